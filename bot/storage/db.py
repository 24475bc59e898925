"""The async engine, sessions and schema migrations.

SQLite (the default, one file under ``DESKBOT_HOME``) and PostgreSQL (``DESKBOT_DATABASE_URL``)
go through the same code. Schema changes are Alembic migrations; :func:`upgrade` applies them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import cast

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.storage.inline_sqlite import SQLITE_PRAGMAS, inline_session, make_sync_engine

log = logging.getLogger("deskbot.storage")

MIGRATIONS = Path(__file__).parent / "migrations"


def make_engine(url: str, *, pool_size: int = 10) -> AsyncEngine:
    """Create an engine; SQLite gets WAL, a busy timeout and enforced foreign keys."""
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
            cur = dbapi_conn.cursor()
            for pragma in (*SQLITE_PRAGMAS, "busy_timeout=30000"):
                cur.execute(f"PRAGMA {pragma}")
            cur.close()

        return engine
    return create_async_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


class Database:
    """An engine plus a session factory; one per process."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.engine = make_engine(url, pool_size=pool_size)
        self.sessions = async_sessionmaker(self.engine, class_=AsyncSession, expire_on_commit=False)
        # SQLite has one writer: concurrent write transactions in one process would meet
        # SQLITE_BUSY. Taking turns in the event loop instead costs nothing, since every
        # statement runs on one file anyway. Sessions run inline (bot.storage.inline_sqlite),
        # which costs less CPU than going through aiosqlite.
        self._turn = asyncio.Lock() if self.is_sqlite else None
        self.sync_engine = make_sync_engine(url) if self.is_sqlite else None

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session in one transaction: committed on success, rolled back on any error."""
        if self._turn is None:
            async with self.sessions() as session, session.begin():
                yield session
            return
        assert self.sync_engine is not None
        async with self._turn, inline_session(self.sync_engine) as inline:
            # InlineSession offers the AsyncSession methods deskbot uses (inline_sqlite.py).
            yield cast(AsyncSession, inline)

    async def upgrade(self, revision: str = "head") -> None:
        await upgrade(self.url, revision)

    async def ping(self) -> bool:
        from sqlalchemy import text

        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            return True
        except Exception:
            log.warning("database ping failed", exc_info=True)
            return False

    async def dispose(self) -> None:
        if self.sync_engine is not None:
            self.sync_engine.dispose()
        await self.engine.dispose()


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


async def upgrade(url: str, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` (runs Alembic in a thread)."""
    if url.startswith("sqlite"):
        make_engine(url)  # creates the parent directory
    await asyncio.to_thread(command.upgrade, alembic_config(url), revision)
