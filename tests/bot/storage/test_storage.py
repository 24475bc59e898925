"""Storage on both databases: migrations, idempotent inbound messages, model activation."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func
from sqlmodel import select

from bot.errors import ConflictError, NotFoundError
from bot.storage.db import Database
from bot.storage.messages import get_or_create_conversation, store_message
from bot.storage.model_versions import (
    activate_model_version,
    active_model_version,
    list_model_versions,
    register_model_version,
)
from bot.storage.models import Conversation, Message, ModelStatus


async def _count(db: Database, model: type) -> int:
    async with db.session() as s:
        return (await s.exec(select(func.count()).select_from(model))).one()


async def test_ping_and_dialect(db: Database) -> None:
    assert await db.ping()
    assert db.engine.dialect.name in {"sqlite", "postgresql"}


async def test_concurrent_writers_store_one_inbound_message(db: Database) -> None:
    async def deliver(n: int) -> bool:
        async with db.session() as s:
            conv, _ = await get_or_create_conversation(s, "telegram:main", "chat-42")
            _, created = await store_message(
                s,
                conv.id,
                "telegram:main",
                "customer",
                f"hello from writer {n}",
                external_id="update-1001",
            )
            return created

    results = await asyncio.gather(*(deliver(n) for n in range(8)))
    assert sum(results) == 1
    assert await _count(db, Conversation) == 1
    assert await _count(db, Message) == 1
    async with db.session() as s:
        msg = (await s.exec(select(Message))).one()
    assert msg.external_id == "update-1001"
    assert msg.text.startswith("hello from writer ")


async def test_same_external_id_on_other_channel_is_another_message(db: Database) -> None:
    async with db.session() as s:
        conv, created = await get_or_create_conversation(s, "slack:team", "C1")
        assert created
        _, first = await store_message(s, conv.id, "slack:team", "customer", "a", external_id="m1")
        _, second = await store_message(s, conv.id, "webhook:x", "customer", "b", external_id="m1")
        _, third = await store_message(s, conv.id, "slack:team", "customer", "c", external_id="m1")
    assert (first, second, third) == (True, True, False)
    assert await _count(db, Message) == 2


async def test_failed_transaction_leaves_nothing(db: Database) -> None:
    with pytest.raises(RuntimeError):
        async with db.session() as s:
            conv, _ = await get_or_create_conversation(s, "widget", "w-1")
            await store_message(s, conv.id, "widget", "customer", "hi")
            raise RuntimeError("crash mid-request")
    assert await _count(db, Conversation) == 0
    assert await _count(db, Message) == 0


async def test_model_activation_keeps_exactly_one_active(db: Database, tmp_path) -> None:
    await register_model_version(db, "intent", "v1", tmp_path, {"accuracy": 0.9})
    await register_model_version(db, "intent", "v2", tmp_path, {"accuracy": 0.95})
    with pytest.raises(ConflictError):
        await register_model_version(db, "intent", "v2", tmp_path)
    assert await active_model_version(db, "intent") is None

    await activate_model_version(db, "intent", "v1")
    await activate_model_version(db, "intent", "v2")
    active = await active_model_version(db, "intent")
    assert active is not None and active.version == "v2"
    statuses = {v.version: v.status for v in await list_model_versions(db, "intent")}
    assert statuses == {"v1": ModelStatus.RETIRED, "v2": ModelStatus.ACTIVE}

    await activate_model_version(db, "intent", "v1")  # roll back
    assert (await active_model_version(db, "intent")).version == "v1"
    with pytest.raises(NotFoundError):
        await activate_model_version(db, "intent", "v9")
    with pytest.raises(NotFoundError):
        await activate_model_version(db, "nonsense", "v1")
