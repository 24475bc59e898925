"""Fixtures shared by the whole suite: databases (SQLite and the real PostgreSQL) and paths."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The suite trains models in its own process after serving with them: stored bf16 weights made
# that training markedly slower (bot/settings.py, ServerSettings.encoder_bf16_weights);
# tests/retrieval/test_embedder.py checks the stored weights give the same vectors.
os.environ.setdefault("DESKBOT_SERVER__ENCODER_BF16_WEIGHTS", "false")

import pytest

from bot.importer import import_file
from bot.storage.db import Database
from bot.storage.model_versions import activate_model_version, register_model_version
from tests import head_start

pytest_plugins = ["tests.tiny_llm"]

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
POSTGRES_URL = os.environ.get(
    "DESKBOT_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)
UNDER_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


# Fixtures that load a real bundled model: a test using one, directly or through another
# fixture, is marked ``slow`` here, so ``pytest -m "not slow"`` (``make test-quick``) leaves out
# every such test without each having to say so.
REAL_MODEL_FIXTURES = frozenset({"embedder", "real_model", "first_bot"})


def pytest_configure(config: pytest.Config) -> None:
    if not hasattr(config, "workerinput"):  # the run's main process, not an xdist worker
        head_start.open_scratch()


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start the slow preparations the collected tests need (tests/head_start.py)."""
    if session.config.option.collectonly:
        return
    if any(item.name == "test_packages_pass_mypy" for item in session.items):
        head_start.start("mypy", *head_start.MYPY)
    if SHARED_DATA.is_dir() and any(
        "first_bot" in getattr(item, "fixturenames", ()) for item in session.items
    ):
        from tests.bot.learning_demo import first_bot_args

        head_start.start("first_bot", *first_bot_args(SHARED_DATA))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if REAL_MODEL_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        # CI lays the data sets beside the clone; a clone on its own skips what needs them.
        message = f"the shared data sets are missing: expected them at {SHARED_DATA}"
        if UNDER_CI:
            pytest.fail(message)
        pytest.skip(message)
    return SHARED_DATA


async def _pg_admin(sql: str) -> None:
    import asyncpg

    dsn = POSTGRES_URL.replace("postgresql+asyncpg://", "postgresql://")
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


_pg_template: str | None = None
_pg_error: str | None = None


async def _postgres_database() -> str:
    """A fresh, migrated PostgreSQL database: cloned from a migrated template made once."""
    global _pg_template, _pg_error
    if _pg_error is not None:
        raise RuntimeError(_pg_error)
    base = POSTGRES_URL.rsplit("/", 1)[0]
    if _pg_template is None:
        name = f"deskbot_tpl_{uuid.uuid4().hex[:8]}"
        try:
            await _pg_admin(f'CREATE DATABASE "{name}"')
        except Exception as exc:
            _pg_error = f"PostgreSQL at {POSTGRES_URL} is unreachable: {exc}"
            raise RuntimeError(_pg_error) from exc
        tpl = Database(f"{base}/{name}")
        await tpl.upgrade()
        await tpl.dispose()
        _pg_template = name
    name = f"deskbot_t_{uuid.uuid4().hex[:12]}"
    await _pg_admin(f'CREATE DATABASE "{name}" TEMPLATE "{_pg_template}"')
    return name


@pytest.fixture(params=["sqlite", "postgresql"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated, empty database: the test runs once on SQLite and once on PostgreSQL.

    Outside CI an unreachable PostgreSQL skips with the reason; under CI it fails.
    """
    if request.param == "sqlite":
        database = Database(f"sqlite+aiosqlite:///{tmp_path / 'deskbot.db'}")
        await database.upgrade()
        yield database
        await database.dispose()
        return
    try:
        name = await _postgres_database()
    except RuntimeError as exc:
        if UNDER_CI:
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    database = Database(f"{POSTGRES_URL.rsplit('/', 1)[0]}/{name}", pool_size=5)
    yield database
    await database.dispose()
    await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[Database]:
    """A migrated SQLite database, for tests that do not exercise storage itself."""
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'deskbot.db'}")
    await database.upgrade()
    yield database
    await database.dispose()


# -- a prepared deskbot home: the sample imported and indexed with the real encoder --


@pytest.fixture(scope="session")
def tiny_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer random BERT with the bundled encoder's tokenizer, built once per session."""
    from tests.finetune.intent.helpers import tiny_encoder

    return tiny_encoder(tmp_path_factory.mktemp("tiny-encoder"))


@pytest.fixture(scope="session")
def embedder() -> Any:
    from retrieval.embedder import Embedder

    return Embedder()


async def build_index(home: Path, db: Database, embedder: Any, version: str | None = None) -> str:
    """Index the active pairs and activate the index, registered as ``deskbot index build``
    registers it."""
    from bot.storage.pairs import StoredPairs
    from retrieval.build import build_from_source
    from retrieval.manifest import read_manifest
    from retrieval.store import IndexStore

    store = IndexStore(home / "indexes")
    path = await build_from_source(StoredPairs(db), store, embedder, version=version)
    store.activate(path.name)
    manifest = read_manifest(path)
    metrics = {"count": manifest.count, "kind": manifest.kind, "model": manifest.model}
    await register_model_version(db, "index", path.name, path, metrics)
    await activate_model_version(db, "index", path.name)
    return path.name


@pytest.fixture(scope="session")
def sample_home(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> Path:
    home = tmp_path_factory.mktemp("sample-home")

    async def prepare() -> None:
        db = Database(f"sqlite+aiosqlite:///{home / 'deskbot.db'}")
        await db.upgrade()
        for name in ("sample_pairs.csv", "sample_dialogues.jsonl"):
            await import_file(db, REPO_ROOT / "examples" / name)
        await build_index(home, db, embedder)
        await db.dispose()

    asyncio.run(prepare())
    return home


@pytest.fixture(scope="session")
def generator_cache() -> Path:
    """One generator cache for the run, shared by the xdist workers: the bundled model's
    converted copies depend only on the packaged files, and converting them again for every
    home costs seconds per test (each conversion writes aside and renames, so two workers
    converting at once leave one whole copy)."""
    path = head_start.scratch() / "generator-cache"
    path.mkdir(exist_ok=True)
    return path


def share_generator_cache(home: Path, cache: Path) -> None:
    """Point ``home``'s cache at the session's shared one (``Settings.cache_dir``)."""
    assert not (home / "cache").exists(), "the home already has a cache of its own"
    (home / "cache").symlink_to(cache, target_is_directory=True)


@pytest.fixture
def home(sample_home: Path, tmp_path: Path, generator_cache: Path) -> Path:
    """A private copy of the prepared home, sharing the session's generator cache: tests may
    change anything else in it freely."""
    target = tmp_path / "home"
    shutil.copytree(sample_home, target)
    share_generator_cache(target, generator_cache)
    return target


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    head_start.stop_all()
    if _pg_template is not None:
        import asyncio

        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{_pg_template}" WITH (FORCE)'))
