"""Rows as the JSON the API returns (one place, so every route shows a row the same way)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bot.storage.models import (
    Conversation,
    Message,
    ModelVersion,
    Suggestion,
    TrainingRun,
)


def _ts(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def message_json(m: Message) -> dict[str, Any]:
    return {
        "id": m.id,
        "conversation_id": m.conversation_id,
        "role": m.role,
        "text": m.text,
        "created_at": _ts(m.created_at),
        "intent": m.intent,
        "confidence": m.confidence,
        "verdict": m.verdict,
        "author": m.author,
        "reply_to": (m.details or {}).get("reply_to"),
        "quick_replies": (m.details or {}).get("quick_replies") or [],
    }


def suggestion_json(s: Suggestion) -> dict[str, Any]:
    return {
        "id": s.id,
        "conversation_id": s.conversation_id,
        "message_id": s.message_id,
        "draft": s.draft,
        "intent": s.intent,
        "confidence": s.confidence,
        "grounding": s.grounding,
        "sources": s.sources,
        "status": s.status,
        "final_text": s.final_text,
        "reviewer": s.reviewer,
        "created_at": _ts(s.created_at),
        "reviewed_at": _ts(s.reviewed_at),
    }


def conversation_json(c: Conversation) -> dict[str, Any]:
    return {
        "id": c.id,
        "channel": c.channel,
        "status": c.status,
        "assigned_agent": c.assigned_agent,
        "created_at": _ts(c.created_at),
        "updated_at": _ts(c.updated_at),
        "state": c.state or {},
    }


def model_json(m: ModelVersion) -> dict[str, Any]:
    return {
        "id": m.id,
        "kind": m.kind,
        "version": m.version,
        "path": m.path,
        "status": m.status,
        "metrics": m.metrics,
        "report": m.report,
        "created_at": _ts(m.created_at),
        "activated_at": _ts(m.activated_at),
    }


def run_json(r: TrainingRun) -> dict[str, Any]:
    return {
        "id": r.id,
        "kind": r.kind,
        "status": r.status,
        "params": r.params,
        "progress": r.progress,
        "message": r.message,
        "result": r.result,
        "created_at": _ts(r.created_at),
        "started_at": _ts(r.started_at),
        "finished_at": _ts(r.finished_at),
    }
