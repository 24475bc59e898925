"""What a search returns: one retrieved question→answer pair with its score."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Hit:
    pair_id: int  # KnowledgePair.id (or the row id of a CSV-built index)
    score: float  # cosine similarity, after any intent boost
    question: str
    answer: str
    intent: str | None = None
