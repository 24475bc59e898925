"""SQLite sessions run inline, and wait for another process's write lock without blocking."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from sqlmodel import select

from bot.storage import inline_sqlite
from bot.storage.db import Database
from bot.storage.inline_sqlite import DatabaseBusyError
from bot.storage.messages import recent_turns, store_message
from bot.storage.models import Conversation, Message


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> Database:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'deskbot.db'}")
    await db.upgrade()
    yield db
    await db.dispose()


async def _new_conversation(db: Database) -> int:
    async with db.session() as s:
        conv = Conversation(channel="widget", status="bot", meta={})
        s.add(conv)
        await s.flush()
        assert conv.id is not None
        return conv.id


async def test_waits_for_another_process_without_blocking_the_loop(
    sqlite_db: Database, tmp_path: Path
) -> None:
    conv_id = await _new_conversation(sqlite_db)
    other = sqlite3.connect(tmp_path / "deskbot.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process writing
    other.execute('UPDATE conversations SET meta = \'{"by": "other"}\'')

    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    async def write() -> int:
        async with sqlite_db.session() as s:
            msg, _ = await store_message(s, conv_id, "widget", "customer", "hello")
            assert msg.id is not None
            return msg.id

    tick_task = asyncio.create_task(ticker())
    writer = asyncio.create_task(write())
    await asyncio.sleep(0.3)
    assert not writer.done()  # still waiting for the lock...
    assert ticks >= 10  # ...while the event loop kept running
    other.execute("COMMIT")
    other.close()
    message_id = await asyncio.wait_for(writer, 5)
    tick_task.cancel()

    async with sqlite_db.session() as s:
        conv = await s.get(Conversation, conv_id)
        assert conv is not None and conv.meta == {"by": "other"}  # both writes landed
        assert await recent_turns(s, conv_id, message_id + 1) == [("customer", "hello")]


async def test_gives_up_with_a_clear_error_and_writes_nothing(
    sqlite_db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conv_id = await _new_conversation(sqlite_db)
    monkeypatch.setattr(inline_sqlite, "LOCK_WAIT_S", 0.2)
    other = sqlite3.connect(tmp_path / "deskbot.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(DatabaseBusyError, match="locked by another process") as err:
            async with sqlite_db.session() as s:
                await store_message(s, conv_id, "widget", "customer", "lost?")
        assert err.value.status == 503
    finally:
        other.execute("ROLLBACK")
        other.close()
    async with sqlite_db.session() as s:
        assert (await s.exec(select(Message))).all() == []


async def test_an_error_in_the_block_rolls_everything_back(sqlite_db: Database) -> None:
    conv_id = await _new_conversation(sqlite_db)
    with pytest.raises(RuntimeError, match="boom"):
        async with sqlite_db.session() as s:
            await store_message(s, conv_id, "widget", "customer", "half")
            raise RuntimeError("boom")
    async with sqlite_db.session() as s:
        assert (await s.exec(select(Message))).all() == []
        # an empty block commits nothing and leaves no transaction open
    async with sqlite_db.session() as s:
        pass
    await _new_conversation(sqlite_db)
