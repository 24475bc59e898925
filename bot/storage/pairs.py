"""The knowledge pairs in the database, as retrieval reads them to build an index."""

from __future__ import annotations

from pathlib import Path

from sqlmodel import col, select

from bot.storage.db import Database
from bot.storage.model_versions import activate_model_version, register_model_version
from bot.storage.models import KnowledgePair
from retrieval.pairs import Pair


class StoredPairs:
    """:class:`retrieval.build.PairSource` on the ``knowledge_pairs`` table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def active_pairs(self) -> list[Pair]:
        async with self.db.session() as s:
            rows = await s.exec(
                select(KnowledgePair)
                .where(col(KnowledgePair.active).is_(True))
                .order_by(col(KnowledgePair.id))
            )
            return [Pair(int(r.id or 0), r.question, r.answer, r.intent) for r in rows.all()]

    async def record_index(self, version: str, path: Path, count: int) -> None:
        await register_model_version(self.db, "index", version, path, {"count": count})
        await activate_model_version(self.db, "index", version)
