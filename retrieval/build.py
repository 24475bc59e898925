"""Build an index version from the active knowledge pairs in the database."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlmodel import col, select

from bot.errors import InputError
from bot.storage.db import Database
from bot.storage.model_versions import activate_model_version, register_model_version
from bot.storage.models import KnowledgePair
from retrieval.embedder import TextEncoder
from retrieval.pairs import Pair
from retrieval.store import IndexStore


async def active_pairs(db: Database) -> list[Pair]:
    async with db.session() as s:
        rows = await s.exec(
            select(KnowledgePair)
            .where(col(KnowledgePair.active).is_(True))
            .order_by(col(KnowledgePair.id))
        )
        return [Pair(int(r.id or 0), r.question, r.answer, r.intent) for r in rows.all()]


async def build_from_database(
    db: Database, store: IndexStore, embedder: TextEncoder, *, version: str | None = None
) -> Path:
    """Write a new (inactive) version from the active pairs; encoding runs in a thread."""
    pairs = await active_pairs(db)
    if not pairs:
        raise InputError("there are no active knowledge pairs to index; import some first")
    return await asyncio.to_thread(store.build, pairs, embedder, version=version)


async def ensure_active_index(db: Database, store: IndexStore, embedder: TextEncoder) -> str | None:
    """First run: build and activate an index when none is active and there are pairs.

    Returns the version built, or None when one was already active or there is nothing to
    index. Registers the version as the active ``index`` model.
    """
    if store.active_version() is not None:
        return None
    pairs = await active_pairs(db)
    if not pairs:
        return None
    path = await asyncio.to_thread(store.build, pairs, embedder)
    version = path.name
    store.activate(version)
    await register_model_version(db, "index", version, path, {"count": len(pairs)})
    await activate_model_version(db, "index", version)
    return version
