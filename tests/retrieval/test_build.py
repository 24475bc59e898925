"""Building an index from the knowledge pairs in the database (bot.storage.pairs)."""

from __future__ import annotations

import hashlib

import pytest

from bot.errors import InputError
from bot.storage.db import Database
from bot.storage.models import KnowledgePair
from bot.storage.pairs import StoredPairs
from retrieval.build import build_from_source
from retrieval.store import IndexStore


async def _insert(db: Database, rows: list[tuple[str, str, str | None, bool]]) -> list[int]:
    async with db.session() as s:
        objs = [
            KnowledgePair(
                question=q,
                answer=a,
                intent=i,
                active=active,
                content_hash=hashlib.sha256((q + a).encode()).hexdigest(),
            )
            for q, a, i, active in rows
        ]
        s.add_all(objs)
        await s.flush()
        return [int(o.id or 0) for o in objs]


async def test_build_from_active_pairs(tmp_path, encoder):
    db = Database("sqlite+aiosqlite:///" + str(tmp_path / "t.db"))
    await db.upgrade()
    try:
        ids = await _insert(
            db,
            [
                ("how do I cancel my order", "Press Cancel.", "cancel_order", True),
                ("where is my package", "See Track.", "track_order", True),
                ("old question about faxes", "We no longer fax.", None, False),
            ],
        )
        store = IndexStore(tmp_path / "indexes")
        path = await build_from_source(StoredPairs(db), store, encoder, version="db1")
        store.activate("db1")
        index = store.load_active(encoder)
        assert path.name == "db1"
        assert len(index) == 2
        [hits] = index.search(["where is my package"], k=5)
        assert hits[0].pair_id == ids[1]
        assert ids[2] not in {h.pair_id for h in hits}
    finally:
        await db.dispose()


async def test_build_with_no_pairs_is_an_input_error(tmp_path, encoder):
    db = Database("sqlite+aiosqlite:///" + str(tmp_path / "t.db"))
    await db.upgrade()
    try:
        with pytest.raises(InputError, match="no active knowledge pairs"):
            await build_from_source(StoredPairs(db), IndexStore(tmp_path / "i"), encoder)
    finally:
        await db.dispose()


async def test_first_run_builds_once(tmp_path, encoder):
    from bot.storage.model_versions import active_model_version
    from retrieval.build import ensure_active_index

    db = Database("sqlite+aiosqlite:///" + str(tmp_path / "t.db"))
    await db.upgrade()
    try:
        store = IndexStore(tmp_path / "indexes")
        pairs = StoredPairs(db)
        assert await ensure_active_index(pairs, store, encoder) is None  # nothing to index
        await _insert(db, [("where is my package", "See Track.", "track_order", True)])
        version = await ensure_active_index(pairs, store, encoder)
        assert version is not None and store.active_version() == version
        assert (await active_model_version(db, "index")).version == version
        assert await ensure_active_index(pairs, store, encoder) is None
        assert len(store.versions()) == 1
    finally:
        await db.dispose()
