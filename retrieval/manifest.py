"""manifest.json: what an index version was built from, checked when it is loaded."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from bot.errors import ModelError

FORMAT = 1
MANIFEST = "manifest.json"
INDEX_FILE = "index.faiss"
PAIRS_FILE = "pairs.jsonl"
CHECKED_FILES = (INDEX_FILE, PAIRS_FILE)


@dataclass(frozen=True, slots=True)
class Manifest:
    version: str
    model: str  # embedding model name (Embedder.name)
    dim: int
    count: int  # pairs at build time; incremental updates are in updates/
    kind: str  # "flat" or "ivf"
    nlist: int
    built_at: str  # ISO 8601, UTC
    build_seconds: float
    checksum: str  # sha256 over the index and pairs files, in CHECKED_FILES order
    format: int = FORMAT

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def checksum(directory: Path) -> str:
    digest = hashlib.sha256()
    for name in CHECKED_FILES:
        with open(directory / name, "rb") as fh:
            while chunk := fh.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def write_manifest(directory: Path, manifest: Manifest) -> None:
    (directory / MANIFEST).write_text(json.dumps(manifest.to_dict(), indent=2) + "\n")


def read_manifest(directory: Path) -> Manifest:
    path = directory / MANIFEST
    if not path.is_file():
        raise ModelError(f"{directory} is not an index version: it has no {MANIFEST}")
    try:
        data = json.loads(path.read_text())
        manifest = Manifest(**data)
    except (ValueError, TypeError) as exc:
        raise ModelError(f"{path} is unreadable: {exc}") from None
    if manifest.format != FORMAT:
        raise ModelError(
            f"{path} has index format {manifest.format}; this deskbot reads format {FORMAT}"
        )
    return manifest


def check_compatible(manifest: Manifest, model: str | None, dim: int | None) -> None:
    """Raise :class:`ModelError` when the index was built with another embedding model."""
    if dim is not None and dim != manifest.dim:
        raise ModelError(
            f"index {manifest.version} holds {manifest.dim}-dimensional vectors from "
            f"{manifest.model!r}, but the embedder {model!r} makes {dim}-dimensional ones; "
            "rebuild the index with `deskbot index build` or set retrieval.embedder back",
            version=manifest.version,
        )
    if model is not None and model != manifest.model:
        raise ModelError(
            f"index {manifest.version} was built with the embedding model {manifest.model!r}, "
            f"but the embedder is {model!r}; rebuild the index with `deskbot index build` "
            "or set retrieval.embedder back",
            version=manifest.version,
        )
