"""Versioned index directories under ``settings.indexes_dir`` and the switch between them.

Layout::

    <root>/ACTIVE                      the active version's name (replaced with os.replace)
    <root>/versions/<version>/         index.faiss, pairs.jsonl, manifest.json, updates/

A version is written under a temporary name and renamed into place complete, and ``ACTIVE``
is replaced atomically, so a reader sees the old or the new version, never a partial one.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from bot.errors import InputError, ModelError, NotFoundError
from retrieval import faiss_index
from retrieval.config import RetrievalSettings
from retrieval.embedder import TextEncoder
from retrieval.index import KnowledgeIndex
from retrieval.manifest import (
    INDEX_FILE,
    PAIRS_FILE,
    Manifest,
    check_compatible,
    checksum,
    read_manifest,
    write_manifest,
)
from retrieval.pairs import as_pairs

log = logging.getLogger("deskbot.retrieval")

ACTIVE = "ACTIVE"
VERSIONS = "versions"


def new_version_name() -> str:
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


class IndexStore:
    def __init__(self, root: Path, settings: RetrievalSettings | None = None) -> None:
        self.root = Path(root)
        self.settings = settings or RetrievalSettings()

    def version_dir(self, version: str) -> Path:
        if not version or "/" in version or version.startswith("."):
            raise InputError(f"bad index version name {version!r}")
        return self.root / VERSIONS / version

    # ----------------------------------------------------------------- build

    def build(
        self,
        pairs: Iterable[Any],
        embedder: TextEncoder,
        *,
        version: str | None = None,
        vectors: np.ndarray | None = None,
    ) -> Path:
        """Embed the pairs' questions and write a new, inactive version; returns its directory."""
        started = time.perf_counter()
        items = as_pairs(pairs)
        version = version or new_version_name()
        final = self.version_dir(version)
        if final.exists():
            raise InputError(f"index version {version!r} already exists in {self.root}")
        if vectors is None:
            vectors = embedder.encode([p.question for p in items], self.settings.batch_size)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.shape != (len(items), embedder.dim):
            raise InputError(
                f"expected vectors of shape ({len(items)}, {embedder.dim}), got {vectors.shape}"
            )
        cfg = self.settings
        shape = faiss_index.choose_shape(len(items), cfg.flat_max, cfg.ivf_nlist)
        index = faiss_index.new_index(vectors, shape)
        tmp = self.root / VERSIONS / f".tmp-{version}-{uuid.uuid4().hex[:6]}"
        tmp.mkdir(parents=True)
        try:
            faiss.write_index(index, str(tmp / INDEX_FILE))
            with open(tmp / PAIRS_FILE, "w", encoding="utf-8") as fh:
                for p in items:
                    row = {
                        "id": p.pair_id,
                        "question": p.question,
                        "answer": p.answer,
                        "intent": p.intent,
                    }
                    fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            manifest = Manifest(
                version=version,
                model=embedder.name,
                dim=embedder.dim,
                count=len(items),
                kind=shape.kind,
                nlist=shape.nlist,
                built_at=datetime.now(UTC).isoformat(timespec="microseconds"),
                build_seconds=round(time.perf_counter() - started, 3),
                checksum=checksum(tmp),
            )
            write_manifest(tmp, manifest)
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        log.info(
            "built index %s: %d pairs, %s, %.1fs",
            version,
            len(items),
            shape.kind,
            manifest.build_seconds,
        )
        return final

    # ----------------------------------------------------------------- versions

    def versions(self) -> list[Manifest]:
        """Complete versions, oldest first."""
        base = self.root / VERSIONS
        if not base.is_dir():
            return []
        found = []
        for d in base.iterdir():
            if d.is_dir() and not d.name.startswith("."):
                try:
                    found.append(read_manifest(d))
                except ModelError:
                    log.warning("skipping %s: no readable manifest", d)
        return sorted(found, key=lambda m: (m.built_at, m.version))

    def active_version(self) -> str | None:
        try:
            name = (self.root / ACTIVE).read_text().strip()
        except FileNotFoundError:
            return None
        return name or None

    def activate(self, version: str) -> Path:
        """Make ``version`` the active one, atomically; it must be complete and intact."""
        directory = self.version_dir(version)
        if not directory.is_dir():
            raise NotFoundError(f"no index version {version!r} in {self.root}")
        manifest = read_manifest(directory)
        if checksum(directory) != manifest.checksum:
            raise ModelError(f"index version {version} is corrupt: its checksum does not match")
        tmp = self.root / f".{ACTIVE}.{uuid.uuid4().hex}"
        tmp.write_text(version + "\n")
        os.replace(tmp, self.root / ACTIVE)
        log.info("activated index %s", version)
        return directory

    # ----------------------------------------------------------------- loading

    def load(
        self, version: str, embedder: TextEncoder | None, *, verify: bool = True
    ) -> KnowledgeIndex:
        """Load a version; a manifest that does not match ``embedder`` raises ModelError."""
        directory = self.version_dir(version)
        if not directory.is_dir():
            raise NotFoundError(f"no index version {version!r} in {self.root}")
        manifest = read_manifest(directory)
        if embedder is not None:
            check_compatible(manifest, embedder.name, embedder.dim)
        if verify and checksum(directory) != manifest.checksum:
            raise ModelError(f"index version {version} is corrupt: its checksum does not match")
        faiss_index.set_threads(self.settings.search_threads)
        return KnowledgeIndex.open(directory, manifest, embedder, self.settings)

    def load_active(self, embedder: TextEncoder | None, *, verify: bool = True) -> KnowledgeIndex:
        version = self.active_version()
        if version is None:
            raise ModelError(
                f"no active index in {self.root}; build one with `deskbot index build`"
            )
        return self.load(version, embedder, verify=verify)

    def prune(self, keep: int = 3) -> list[str]:
        """Delete the oldest inactive versions beyond the newest ``keep``; returns their names."""
        active = self.active_version()
        inactive = [m.version for m in self.versions() if m.version != active]
        old = inactive[: max(0, len(inactive) - keep)]
        for version in old:
            shutil.rmtree(self.version_dir(version), ignore_errors=True)
        return old
