"""Stored knowledge-gap topics for route and page tests, without running the miner."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.gaps import MiningResult, TopicDraft, store_topics
from bot.storage.db import Database
from bot.storage.models import Conversation, GapTopic, Message

GIFT_ANSWER = "Gift cards are sold in every branch and on our website."
GIFT_TEXTS = [f"can I buy a gift card, question {i}" for i in range(12)]
CRYPTO_TEXTS = ["can I buy bitcoin", "do you support crypto", "ethereum trading?"]


async def stored_topics(db: Database) -> dict[str, GapTopic]:
    """Two open topics: "gift card" (12 handed-off messages, two agent answers) and
    "buy bitcoin" (3 messages, too few for a new intent)."""
    ids: dict[str, list[int]] = {}
    async with db.session() as s:
        for name, texts in (("gift", GIFT_TEXTS), ("crypto", CRYPTO_TEXTS)):
            conv = Conversation(channel="widget")
            s.add(conv)
            await s.flush()
            rows = [
                Message(
                    conversation_id=conv.id,  # type: ignore[arg-type]
                    channel="widget",
                    role="customer",
                    text=t,
                    intent="oos",
                    verdict="out_of_scope",
                    decision="handoff",
                )
                for t in texts
            ]
            s.add_all(rows)
            await s.flush()
            ids[name] = [m.id for m in rows]  # type: ignore[misc]
    now = datetime.now(UTC)

    def draft(name: str, key: str, texts: list[str], answers: list[dict]) -> TopicDraft:
        return TopicDraft(
            name=name,
            message_ids=ids[key],
            members=[
                {"id": i, "text": t, "reasons": ["out_of_scope"]}
                for i, t in zip(ids[key], texts, strict=True)
            ],
            examples=texts[:5],
            key_phrases=[name, name.split()[-1]],
            nearest_intent="cancel_order",
            similarity=0.41,
            novelty="new",
            answers=answers,
            reasons={"out_of_scope": len(texts)},
            previous=2 if key == "gift" else 0,
        )

    result = MiningResult(now - timedelta(days=7), now, 15, 0)
    result.topics = [
        draft(
            "gift card",
            "gift",
            GIFT_TEXTS,
            [
                {"text": GIFT_ANSWER, "count": 9, "score": 9.5},
                {"text": "Ask in a branch.", "count": 3, "score": 3.2},
            ],
        ),
        draft("buy bitcoin", "crypto", CRYPTO_TEXTS, []),
    ]
    rows = await store_topics(db, result)
    return {"gift": rows[0], "crypto": rows[1]}
