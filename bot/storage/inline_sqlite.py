"""SQLite statements run in the event loop's thread, with the write lock taken asynchronously.

Through aiosqlite, every statement is a round trip to a helper thread and SQLAlchemy's async
layer on top, which cost far more CPU than the statements themselves, twice per message.

Here a session is a plain synchronous SQLAlchemy session on a ``sqlite3`` connection, used
inline: a statement on a local SQLite file takes microseconds. What could block the event loop
is waiting for another process's write lock (a CLI import, ``deskbot worker``), so a
transaction starts with ``BEGIN IMMEDIATE`` under a zero busy timeout and, while another
process writes, retries after ``asyncio.sleep`` instead of sleeping in SQLite's busy handler.
Once it holds the write lock, WAL mode lets nothing else block it.

:class:`InlineSession` offers the ``AsyncSession`` methods deskbot uses, so code written for
PostgreSQL's async driver runs unchanged.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlmodel import Session

from bot.errors import DeskbotError

# Every SQLite connection deskbot opens, through either driver.
SQLITE_PRAGMAS = ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON")
# How long a transaction may wait for another process's write before giving up.
LOCK_WAIT_S = 30.0
# Busy timeout while the lock is held: a guard only (WAL readers and commits do not wait).
HELD_BUSY_MS = 200


class DatabaseBusyError(DeskbotError):
    """Another process held the SQLite write lock for longer than :data:`LOCK_WAIT_S`."""

    code = "database_busy"
    status = 503


def sync_url(url: str) -> str:
    """``sqlite+aiosqlite:///x.db`` -> ``sqlite:///x.db`` (the stdlib driver)."""
    _, sep, rest = url.partition(":///")
    return f"sqlite:///{rest}" if sep else url.replace("+aiosqlite", "")


def make_sync_engine(url: str) -> Engine:
    engine = create_engine(sync_url(url), connect_args={"timeout": 0, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # transactions are begun explicitly below
        for pragma in SQLITE_PRAGMAS:
            dbapi_conn.execute(f"PRAGMA {pragma}")

    return engine


async def _begin_immediate(raw: sqlite3.Connection) -> None:
    """Take the write lock without ever blocking the event loop for it."""
    raw.execute("PRAGMA busy_timeout=0")
    deadline = time.monotonic() + LOCK_WAIT_S
    delay = 0.001
    while True:
        try:
            raw.execute("BEGIN IMMEDIATE")
            break
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            if time.monotonic() > deadline:
                raise DatabaseBusyError(
                    f"the database stayed locked by another process for {LOCK_WAIT_S:.0f} s"
                ) from exc
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
    raw.execute(f"PRAGMA busy_timeout={HELD_BUSY_MS}")


class InlineConnection:
    """``AsyncConnection.execute`` on a synchronous connection."""

    def __init__(self, conn: Connection) -> None:
        self.sync_connection = conn

    async def execute(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        return self.sync_connection.execute(statement, *args, **kwargs)


class InlineSession:
    """The ``AsyncSession`` methods deskbot uses, over a synchronous session."""

    def __init__(self, session: Session) -> None:
        self.sync_session = session

    @property
    def bind(self) -> Any:
        return self.sync_session.bind

    def add(self, instance: Any) -> None:
        self.sync_session.add(instance)

    def add_all(self, instances: Iterable[Any]) -> None:
        self.sync_session.add_all(instances)

    async def exec(self, statement: Any, **kwargs: Any) -> Any:
        return self.sync_session.exec(statement, **kwargs)

    async def execute(self, statement: Any, *args: Any, **kwargs: Any) -> Any:
        return self.sync_session.execute(statement, *args, **kwargs)

    async def get(self, entity: Any, ident: Any, **kwargs: Any) -> Any:
        return self.sync_session.get(entity, ident, **kwargs)

    async def flush(self) -> None:
        self.sync_session.flush()

    async def refresh(self, instance: Any, **kwargs: Any) -> None:
        self.sync_session.refresh(instance, **kwargs)

    async def delete(self, instance: Any) -> None:
        self.sync_session.delete(instance)

    async def connection(self) -> InlineConnection:
        return InlineConnection(self.sync_session.connection())


@asynccontextmanager
async def inline_session(engine: Engine) -> AsyncIterator[InlineSession]:
    """One transaction: committed when the block ends, rolled back on any error."""
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        assert isinstance(raw, sqlite3.Connection)
        await _begin_immediate(raw)
        session = Session(bind=conn, expire_on_commit=False)
        try:
            yield InlineSession(session)
            session.commit()
        except BaseException:
            session.rollback()
            if raw.in_transaction:
                raw.rollback()
            raise
        finally:
            session.close()
            if raw.in_transaction:  # the block did nothing, so the session began nothing
                raw.commit()
