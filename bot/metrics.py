"""Service metrics: Prometheus series for scraping, and the admin dashboard's summary."""

from __future__ import annotations

from collections import Counter, defaultdict
from datetime import timedelta
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Histogram
from prometheus_client import Counter as PCounter
from sqlmodel import col, select

from bot.storage.db import Database
from bot.storage.models import Feedback, Message, Role, Suggestion, utcnow

REGISTRY = CollectorRegistry(auto_describe=True)
HTTP_REQUESTS = PCounter(
    "deskbot_http_requests_total", "HTTP requests", ["method", "route", "status"], registry=REGISTRY
)
HTTP_LATENCY = Histogram(
    "deskbot_http_request_seconds",
    "HTTP request latency",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)
DECISIONS = PCounter(
    "deskbot_reply_decisions_total", "Reply decisions", ["action"], registry=REGISTRY
)
REPLY_LATENCY = Histogram(
    "deskbot_reply_seconds",
    "Time from a stored customer message to the bot's decision",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=REGISTRY,
)


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 2) if values else None


async def summary(db: Database, days: int = 14) -> dict[str, Any]:
    """Automation, review, handoff, CSAT and latency over the last ``days`` days."""
    since = utcnow() - timedelta(days=days)
    async with db.session() as s:
        decided = (
            await s.exec(
                select(Message.created_at, Message.decision, Message.intent, Message.details).where(
                    Message.role == Role.CUSTOMER,
                    col(Message.decision).is_not(None),
                    Message.created_at >= since,
                )
            )
        ).all()
        reviewed = (
            await s.exec(
                select(Suggestion.reviewed_at, Suggestion.status).where(
                    col(Suggestion.reviewed_at).is_not(None), col(Suggestion.reviewed_at) >= since
                )
            )
        ).all()
        ratings = (
            await s.exec(
                select(Feedback.created_at, Feedback.rating).where(Feedback.created_at >= since)
            )
        ).all()

    day: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"n": 0, "sent": 0, "handoff": 0, "lat": [], "rev": Counter(), "csat": []}
    )
    total: dict[str, Any] = {"n": 0, "sent": 0, "handoff": 0, "suggest": 0, "lat": []}
    intents: Counter[str] = Counter()
    for created, decision, intent, details in decided:
        d = day[created.date().isoformat()]
        d["n"] += 1
        total["n"] += 1
        if decision in ("send", "handoff", "suggest"):
            total[decision if decision != "send" else "sent"] += 1
            if decision != "suggest":
                d[decision if decision != "send" else "sent"] += 1
        latency = (details or {}).get("total_ms")
        if isinstance(latency, int | float):
            d["lat"].append(float(latency))
            total["lat"].append(float(latency))
        if intent:
            intents[intent] += 1
    review: Counter[str] = Counter()
    for when, status in reviewed:
        review[status] += 1
        if when is not None:  # always: the query reads reviewed suggestions only
            day[when.date().isoformat()]["rev"][status] += 1
    for when, rating in ratings:
        day[when.date().isoformat()]["csat"].append(rating)
    n_rev = review["approved"] + review["edited"] + review["rejected"]

    daily = []
    for date in sorted(day):
        d = day[date]
        d_rev = d["rev"]["approved"] + d["rev"]["edited"] + d["rev"]["rejected"]
        daily.append(
            {
                "date": date,
                "messages": d["n"],
                "automation_rate": _rate(d["sent"], d["n"]),
                "handoff_rate": _rate(d["handoff"], d["n"]),
                "approval_rate": _rate(d["rev"]["approved"] + d["rev"]["edited"], d_rev),
                "csat": round(sum(d["csat"]) / len(d["csat"]), 2) if d["csat"] else None,
                "latency_p50_ms": _pct(d["lat"], 50),
            }
        )
    all_ratings = [r for _, r in ratings]
    return {
        "summary": {
            "days": days,
            "messages": total["n"],
            "automation_rate": _rate(total["sent"], total["n"]),
            "suggestion_rate": _rate(total["suggest"], total["n"]),
            "handoff_rate": _rate(total["handoff"], total["n"]),
            "approval_rate": _rate(review["approved"] + review["edited"], n_rev),
            "edit_rate": _rate(review["edited"], n_rev),
            "reject_rate": _rate(review["rejected"], n_rev),
            "reviewed": n_rev,
            "csat": round(sum(all_ratings) / len(all_ratings), 2) if all_ratings else None,
            "ratings": len(all_ratings),
            "latency_ms": {
                "p50": _pct(total["lat"], 50),
                "p95": _pct(total["lat"], 95),
                "p99": _pct(total["lat"], 99),
            },
            "top_intents": intents.most_common(10),
        },
        "daily": daily,
    }


# -- limits and recovery (issue 20) --
OVERLOADED = PCounter(
    "deskbot_overloaded_total",
    "Messages that found every reply slot taken, by what was done (reject or handoff)",
    ["action"],
    registry=REGISTRY,
)
INBOUND_DROPPED = PCounter(
    "deskbot_inbound_limited_total",
    "Platform messages refused or left unanswered by a limit",
    ["reason"],
    registry=REGISTRY,
)
RECOVERED = PCounter(
    "deskbot_recovered_messages_total",
    "Customer messages left without a decision and answered by a recovery pass",
    registry=REGISTRY,
)
DEAD_LETTERS = PCounter(
    "deskbot_outbox_dead_letters_total",
    "Deliveries given up (attempts, deadline or permanent error)",
    ["reason"],
    registry=REGISTRY,
)
REPLY_FAILURES = PCounter(
    "deskbot_reply_failures_total",
    "Replies whose draft or whole reply path failed, by stage (the customer still got an outcome)",
    ["stage"],
    registry=REGISTRY,
)
