"""SQLModel tables: the durable state of a deskbot deployment.

Every change here needs an Alembic migration (``deskbot db revision -m "..."``), since
deployments upgrade with ``deskbot db upgrade``.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import JSON, Column, DateTime, Index, Table, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from connectors.outbox import DeliveryStatus

# The outbox's states are the delivery worker's (connectors/outbox.py).
OutboxStatus = DeliveryStatus


def utcnow() -> datetime:
    return datetime.now(UTC)


class _Stored(Protocol):
    id: int | None


def stored_id(row: _Stored) -> int:
    """The id of a row read from the database or flushed; only a new, unflushed row has none."""
    if row.id is None:
        raise ValueError(f"{type(row).__name__} has no id until it is flushed")
    return row.id


def table_of(model: type[SQLModel]) -> Table:
    """The Core table behind a table model (SQLModel does not declare ``__table__`` for types)."""
    return SQLModel.metadata.tables[str(model.__tablename__)]


def _ts(**kw: Any) -> Any:
    return Field(default_factory=utcnow, sa_column=Column(DateTime(timezone=True), **kw))


def _json(default: Any) -> Any:
    return Field(default_factory=default, sa_column=Column(JSON, nullable=False))


class ConversationStatus(enum.StrEnum):
    BOT = "bot"
    HANDOFF = "handoff"
    CLOSED = "closed"


class Role(enum.StrEnum):
    CUSTOMER = "customer"
    BOT = "bot"
    AGENT = "agent"
    SYSTEM = "system"


class SuggestionStatus(enum.StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    EDITED = "edited"
    REJECTED = "rejected"
    AUTO_SENT = "auto_sent"


class ModelStatus(enum.StrEnum):
    CANDIDATE = "candidate"
    ACTIVE = "active"
    RETIRED = "retired"


class Conversation(SQLModel, table=True):
    __tablename__ = "conversations"
    __table_args__ = (
        UniqueConstraint("channel", "external_id", name="uq_conversation_channel_external"),
    )

    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=64, index=True)  # "widget", "import", "telegram:main"...
    external_id: str | None = Field(default=None, max_length=255)
    customer_external_id: str | None = Field(default=None, max_length=255)
    status: str = Field(default=ConversationStatus.BOT, max_length=16, index=True)
    assigned_agent: str | None = Field(default=None, max_length=128)
    token_hash: str | None = Field(default=None, max_length=128)
    meta: dict[str, Any] = _json(dict)
    created_at: datetime = _ts(nullable=False)
    updated_at: datetime = _ts(nullable=False)
    # The dialogue state (bot/dialogue/state.py): active intent, pending slot, clarification.
    state: dict[str, Any] = _json(dict)


class Message(SQLModel, table=True):
    __tablename__ = "messages"
    __table_args__ = (
        # Idempotency: a platform's message id is stored at most once per channel.
        UniqueConstraint("channel", "external_id", name="uq_message_channel_external"),
        Index("ix_messages_conversation_id_id", "conversation_id", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = Field(foreign_key="conversations.id", ondelete="CASCADE")
    channel: str = Field(max_length=64)
    external_id: str | None = Field(default=None, max_length=255)
    role: str = Field(max_length=16)
    text: str = Field(sa_column=Column(Text, nullable=False))
    intent: str | None = Field(default=None, max_length=128, index=True)
    confidence: float | None = None
    verdict: str | None = Field(default=None, max_length=32)
    decision: str | None = Field(default=None, max_length=32)
    # Intent correction by an agent, the label training should use.
    corrected_intent: str | None = Field(default=None, max_length=128)
    model_versions: dict[str, Any] = _json(dict)
    details: dict[str, Any] = _json(dict)  # sources, scores, grounding, timings
    author: str | None = Field(default=None, max_length=128)
    created_at: datetime = _ts(nullable=False, index=True)
    # Set when a recovery pass claims this undecided customer message (bot/recovery.py).
    reply_claimed_at: datetime | None = Field(
        default=None, sa_column=Column(DateTime(timezone=True))
    )


class Suggestion(SQLModel, table=True):
    __tablename__ = "suggestions"

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = Field(foreign_key="conversations.id", index=True, ondelete="CASCADE")
    message_id: int = Field(foreign_key="messages.id", index=True, ondelete="CASCADE")
    draft: str = Field(sa_column=Column(Text, nullable=False))
    sources: list[Any] = _json(list)
    intent: str | None = Field(default=None, max_length=128)
    confidence: float | None = None
    grounding: float | None = None
    status: str = Field(default=SuggestionStatus.PENDING, max_length=16, index=True)
    final_text: str | None = Field(default=None, sa_column=Column(Text))
    reviewer: str | None = Field(default=None, max_length=128)
    reply_message_id: int | None = Field(default=None, foreign_key="messages.id")
    created_at: datetime = _ts(nullable=False)
    reviewed_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class Feedback(SQLModel, table=True):
    __tablename__ = "feedback"

    id: int | None = Field(default=None, primary_key=True)
    message_id: int = Field(foreign_key="messages.id", index=True, ondelete="CASCADE")
    rating: int = Field(ge=1, le=5)  # thumbs up = 5, down = 1
    comment: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = _ts(nullable=False)


class KnowledgePair(SQLModel, table=True):
    """A question and the answer the team gave, as retrieval indexes it."""

    __tablename__ = "knowledge_pairs"
    __table_args__ = (UniqueConstraint("content_hash", name="uq_knowledge_content"),)

    id: int | None = Field(default=None, primary_key=True)
    question: str = Field(sa_column=Column(Text, nullable=False))
    answer: str = Field(sa_column=Column(Text, nullable=False))
    intent: str | None = Field(default=None, max_length=128, index=True)
    source: str = Field(default="import", max_length=64)  # import, agent, admin
    source_ref: str | None = Field(default=None, max_length=255)
    content_hash: str = Field(max_length=64)  # sha256 of question + answer, for dedup
    active: bool = Field(default=True, index=True)
    created_at: datetime = _ts(nullable=False)


class ModelVersion(SQLModel, table=True):
    """A trained artifact (intent model, generator adapter, index); one active per kind."""

    __tablename__ = "model_versions"
    __table_args__ = (
        UniqueConstraint("kind", "version", name="uq_model_kind_version"),
        # At most one active version per kind, even under concurrent activations.
        Index(
            "uq_model_one_active",
            "kind",
            unique=True,
            sqlite_where=text("status = 'active'"),
            postgresql_where=text("status = 'active'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32, index=True)  # intent, generator, index
    version: str = Field(max_length=64)
    path: str = Field(max_length=1024)
    status: str = Field(default=ModelStatus.CANDIDATE, max_length=16, index=True)
    metrics: dict[str, Any] = _json(dict)
    report: dict[str, Any] = _json(dict)  # gate decision and reasons
    training_run_id: int | None = Field(default=None, foreign_key="training_runs.id")
    created_at: datetime = _ts(nullable=False)
    activated_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class TrainingRun(SQLModel, table=True):
    __tablename__ = "training_runs"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=32)  # intent, generator, index, import, export, retrain
    status: str = Field(default="queued", max_length=16, index=True)
    params: dict[str, Any] = _json(dict)
    progress: float = 0.0
    message: str | None = Field(default=None, sa_column=Column(Text))
    result: dict[str, Any] = _json(dict)
    cancel_requested: bool = False
    worker: str | None = Field(default=None, max_length=128)
    lease_until: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    created_at: datetime = _ts(nullable=False)
    started_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    finished_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_keys"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=128)
    role: str = Field(max_length=16)  # agent, admin
    prefix: str = Field(max_length=16, index=True)  # first characters, to find the row
    key_hash: str = Field(max_length=128)
    active: bool = True
    created_at: datetime = _ts(nullable=False)
    last_used_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    # Refused from this moment on; None: never expires.
    expires_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
    revoked_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class Outbox(SQLModel, table=True):
    """A durable outbound delivery; sent at most once, retried until it is."""

    __tablename__ = "outbox"

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = Field(foreign_key="conversations.id", index=True, ondelete="CASCADE")
    message_id: int | None = Field(default=None, foreign_key="messages.id")
    channel: str = Field(max_length=64)
    payload: dict[str, Any] = _json(dict)
    status: str = Field(default=OutboxStatus.PENDING, max_length=16, index=True)
    attempts: int = 0
    next_try_at: datetime = _ts(nullable=False, index=True)
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = _ts(nullable=False)
    sent_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


class StreamTicket(SQLModel, table=True):
    """A single-use, short-lived credential for opening one event stream (EventSource).

    It names what it opens (a conversation, or the agent stream of one API key by its hash),
    never the long-lived credential itself, so no token or key appears in a URL.
    """

    __tablename__ = "stream_tickets"

    id: int | None = Field(default=None, primary_key=True)
    ticket_hash: str = Field(max_length=128, unique=True)
    conversation_id: int | None = Field(
        default=None, foreign_key="conversations.id", ondelete="CASCADE"
    )
    api_key_hash: str | None = Field(default=None, max_length=128)
    expires_at: datetime = _ts(nullable=False, index=True)
    used_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))


# One rating per message: a second rating replaces the first (bot/api/widget.py).
Index("uq_feedback_message_id", table_of(Feedback).c.message_id, unique=True)


class GapStatus(enum.StrEnum):
    OPEN = "open"
    ACCEPTED = "accepted"  # became a new intent
    MERGED = "merged"  # its messages were labelled with an existing intent
    DISMISSED = "dismissed"


class GapTopic(SQLModel, table=True):
    """A knowledge gap: a cluster of customer messages the bot did not answer well
    (``bot/gaps.py``). Every text stored here is scrubbed of personal data."""

    __tablename__ = "gap_topics"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=128)
    status: str = Field(default=GapStatus.OPEN, max_length=16, index=True)
    size: int = 0
    previous: int = 0  # similar messages in the period before, for the trend
    message_ids: list[Any] = _json(list)
    members: list[Any] = _json(list)  # [{"id", "text", "reasons"}], scrubbed
    examples: list[Any] = _json(list)  # the most representative texts, scrubbed
    key_phrases: list[Any] = _json(list)
    nearest_intent: str | None = Field(default=None, max_length=128)
    similarity: float | None = None
    novelty: str = Field(default="new", max_length=16)  # "new" or "existing"
    answers: list[Any] = _json(list)  # [{"text", "count", "score"}], scrubbed, best first
    reasons: dict[str, Any] = _json(dict)  # why its messages were mined: reason -> count
    intent: str | None = Field(default=None, max_length=128)  # accepted as / merged into
    resolved_by: str | None = Field(default=None, max_length=128)
    period_start: datetime = _ts(nullable=False)
    period_end: datetime = _ts(nullable=False)
    created_at: datetime = _ts(nullable=False)
    resolved_at: datetime | None = Field(default=None, sa_column=Column(DateTime(timezone=True)))
