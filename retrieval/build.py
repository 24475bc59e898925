"""Build an index version from the active knowledge pairs in the database."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlmodel import col, select

from bot.errors import InputError
from bot.storage.db import Database
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
