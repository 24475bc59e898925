"""Build an index version from the active knowledge pairs, wherever they are kept."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Protocol

from bot.errors import InputError
from retrieval.embedder import TextEncoder
from retrieval.pairs import Pair
from retrieval.store import IndexStore


class PairSource(Protocol):
    """Where the knowledge pairs live; ``bot.storage.pairs.StoredPairs`` is the database."""

    async def active_pairs(self) -> list[Pair]:
        """The pairs an index should hold, in id order."""
        ...

    async def record_index(self, version: str, path: Path, count: int) -> None:
        """Note ``version`` (at ``path``, ``count`` pairs) as the active index version."""
        ...


async def build_from_source(
    source: PairSource, store: IndexStore, embedder: TextEncoder, *, version: str | None = None
) -> Path:
    """Write a new (inactive) version from the active pairs; encoding runs in a thread."""
    pairs = await source.active_pairs()
    if not pairs:
        raise InputError("there are no active knowledge pairs to index; import some first")
    return await asyncio.to_thread(store.build, pairs, embedder, version=version)


async def ensure_active_index(
    source: PairSource, store: IndexStore, embedder: TextEncoder
) -> str | None:
    """First run: build and activate an index when none is active and there are pairs.

    Returns the version built, or None when one was already active or there is nothing to
    index. The source records the version as the active index.
    """
    if store.active_version() is not None:
        return None
    pairs = await source.active_pairs()
    if not pairs:
        return None
    path = await asyncio.to_thread(store.build, pairs, embedder)
    version = path.name
    store.activate(version)
    await source.record_index(version, path, len(pairs))
    return version
