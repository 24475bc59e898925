"""The update log of an index version: pairs added and deactivated since it was built.

Each change is one JSON file ``updates/<seq>.json``, written to a temporary name and linked
into place, so a crash leaves either the whole change or none of it and two writers never
take the same sequence number. Loading replays the files in order; a rebuild compacts them.
"""

from __future__ import annotations

import base64
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from bot.errors import ModelError
from retrieval.pairs import Pair

UPDATES_DIR = "updates"


def _encode_vectors(vectors: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(vectors, dtype="<f4").tobytes()).decode()


def _decode_vectors(text: str, n: int, dim: int) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), dtype="<f4").reshape(n, dim).astype(np.float32)


class UpdateLog:
    def __init__(self, version_dir: Path) -> None:
        self.dir = version_dir / UPDATES_DIR

    def files(self) -> list[Path]:
        if not self.dir.is_dir():
            return []
        return sorted(p for p in self.dir.glob("*.json") if p.stem.isdigit())

    def _append(self, entry: dict[str, Any]) -> Path:
        self.dir.mkdir(exist_ok=True)
        tmp = self.dir / f".tmp-{uuid.uuid4().hex}"
        with open(tmp, "w") as fh:
            json.dump(entry, fh)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            existing = self.files()
            seq = int(existing[-1].stem) + 1 if existing else 1
            while True:
                target = self.dir / f"{seq:08d}.json"
                try:
                    os.link(tmp, target)
                    return target
                except FileExistsError:
                    seq += 1
        finally:
            tmp.unlink(missing_ok=True)

    def append_add(self, pairs: list[Pair], vectors: np.ndarray) -> Path:
        return self._append(
            {
                "op": "add",
                "pairs": [
                    {
                        "id": p.pair_id,
                        "question": p.question,
                        "answer": p.answer,
                        "intent": p.intent,
                    }
                    for p in pairs
                ],
                "dim": int(vectors.shape[1]),
                "vectors": _encode_vectors(vectors),
            }
        )

    def append_deactivate(self, pair_ids: list[int]) -> Path:
        return self._append({"op": "deactivate", "ids": [int(i) for i in pair_ids]})

    def replay(self) -> Iterator[tuple[str, Any]]:
        """``("add", (pairs, vectors))`` and ``("deactivate", ids)`` in the order written."""
        for path in self.files():
            try:
                entry = json.loads(path.read_text())
                if entry["op"] == "add":
                    pairs = [
                        Pair(int(p["id"]), p["question"], p["answer"], p.get("intent"))
                        for p in entry["pairs"]
                    ]
                    vectors = _decode_vectors(entry["vectors"], len(pairs), int(entry["dim"]))
                    yield "add", (pairs, vectors)
                elif entry["op"] == "deactivate":
                    yield "deactivate", [int(i) for i in entry["ids"]]
                else:
                    raise ValueError(f"unknown op {entry['op']!r}")
            except (ValueError, KeyError, TypeError) as exc:
                raise ModelError(f"index update {path} is unreadable: {exc}") from None
