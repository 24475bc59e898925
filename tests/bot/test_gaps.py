"""Knowledge gaps: which messages are mined, what a topic carries, and what accepting,
merging and dismissing a topic change (both databases, the real encoder)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import col, select

from bot.errors import ConflictError, InputError
from bot.gaps import (
    accept_topic,
    dismiss_topic,
    merge_topic,
    mine,
    rank_answers,
    select_gap_messages,
    store_topics,
)
from bot.importer import IMPORT_CHANNEL
from bot.scrub import Scrubber
from bot.settings import Settings, load_settings
from bot.storage.db import Database
from bot.storage.models import (
    Conversation,
    Feedback,
    GapTopic,
    KnowledgePair,
    Message,
    Suggestion,
    TrainingRun,
)

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
START = NOW - timedelta(days=7)


class Log:
    """Writes conversation rows the way the pipeline and the agent routes leave them."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def turn(
        self,
        text: str,
        *,
        verdict: str | None = "confident",
        decision: str = "send",
        intent: str | None = "card_arrival",
        when: datetime = NOW - timedelta(days=1),
        channel: str = "widget",
        corrected: str | None = None,
        reply: str | None = "Your card arrives in 3 days.",
        rating: int | None = None,
    ) -> int:
        async with self.db.session() as s:
            conv = Conversation(channel=channel)
            s.add(conv)
            await s.flush()
            msg = Message(
                conversation_id=conv.id,  # type: ignore[arg-type]
                channel=channel,
                role="customer",
                text=text,
                intent=intent,
                confidence=0.9,
                verdict=verdict,
                decision=decision,
                corrected_intent=corrected,
                created_at=when,
            )
            s.add(msg)
            await s.flush()
            if decision == "send" and reply:
                bot = Message(
                    conversation_id=conv.id,  # type: ignore[arg-type]
                    channel=channel,
                    role="bot",
                    text=reply,
                    decision="send",
                    details={"reply_to": msg.id},
                    created_at=when,
                )
                s.add(bot)
                await s.flush()
                if rating is not None:
                    s.add(Feedback(message_id=bot.id, rating=rating))  # type: ignore[arg-type]
            assert msg.id is not None
            return msg.id

    async def suggestion(
        self, message_id: int, status: str, draft: str, final: str | None = None
    ) -> None:
        async with self.db.session() as s:
            msg = await s.get(Message, message_id)
            assert msg is not None
            s.add(
                Suggestion(
                    conversation_id=msg.conversation_id,
                    message_id=message_id,
                    draft=draft,
                    status=status,
                    final_text=final,
                )
            )

    async def agent_reply(self, message_id: int, text: str) -> None:
        async with self.db.session() as s:
            msg = await s.get(Message, message_id)
            assert msg is not None
            s.add(
                Message(
                    conversation_id=msg.conversation_id,
                    channel=msg.channel,
                    role="agent",
                    text=text,
                    decision="agent",
                    author="Ada",
                    details={"reply_to": message_id},
                    created_at=msg.created_at,
                )
            )


async def test_selects_exactly_the_messages_not_answered_well(db: Database) -> None:
    log = Log(db)
    want: dict[int, tuple[str, ...]] = {}
    # Answered confidently, or approved / lightly edited by an agent, or rated well: not gaps.
    await log.turn("where is my card")
    await log.turn("card still not here", rating=5)
    approved = await log.turn("my card has not come", verdict="ambiguous", decision="suggest")
    want[approved] = ("ambiguous",)  # ambiguous even though the agent approved it
    await log.suggestion(approved, "approved", "It arrives soon.", "It arrives soon.")
    light = await log.turn("card delivery time?", decision="suggest")
    await log.suggestion(
        light,
        "edited",
        "Your card arrives within 3 working days.",
        "Your card arrives within 3 working days!",
    )
    # A request for a person is handled as asked, not a gap.
    await log.turn("let me talk to a human", intent="human_agent", decision="handoff", reply=None)
    # Gaps.
    oos = await log.turn(
        "do you sell gift cards", verdict="out_of_scope", decision="handoff", intent="oos"
    )
    want[oos] = ("out_of_scope",)
    none = await log.turn("card arrival", decision="handoff", reply=None)
    want[none] = ("handoff",)
    rejected = await log.turn("my card is late", decision="suggest")
    await log.suggestion(rejected, "rejected", "Your card arrives in 3 days.")
    want[rejected] = ("rejected",)
    heavy = await log.turn("card never arrived", decision="suggest")
    await log.suggestion(heavy, "edited", "Your card arrives in 3 days.", "We'll cancel it now.")
    want[heavy] = ("edited",)
    disliked = await log.turn("why is the card not here", rating=1)
    want[disliked] = ("negative_feedback",)
    # Already labelled by an agent, imported, or outside the period: left out.
    await log.turn("gift card?", verdict="out_of_scope", decision="handoff", corrected="gift_cards")
    await log.turn("gift cards", verdict="out_of_scope", decision="handoff", channel=IMPORT_CHANNEL)
    await log.turn(
        "old question", verdict="out_of_scope", decision="handoff", when=START - timedelta(days=1)
    )

    found = await select_gap_messages(db, START, NOW)
    assert {m.id: m.reasons for m in found} == want
    assert [m.id for m in found] == sorted(want)  # oldest first
    skipped = await select_gap_messages(db, START, NOW, exclude=[oos])
    assert oos not in {m.id for m in skipped}


# -- mining, end to end on the real encoder ---------------------------------------------------

GIFT = [
    "do you sell gift cards",
    "can I buy a gift card for my friend",
    "where can I purchase a gift card",
    "I want to buy a gift voucher",
    "gift cards available?",
    "how much does a gift card cost",
    "can I order a gift card online",
    "is there a gift card I can give someone",
    "buy gift card please, my email is jane.doe@example.com",
    "gift card for birthday, call me on +44 20 7946 0958",
    "how do I get a gift card",
    "do you offer gift vouchers",
]
CRYPTO = [
    "can I buy bitcoin with my account",
    "do you support cryptocurrency",
    "how do I purchase crypto",
    "is ethereum trading available",
    "can I hold bitcoin in the app",
]
CARD_ARRIVAL = [
    "where is my new card",
    "my card has not arrived yet",
    "when will my card be delivered",
    "still waiting for my card to arrive",
]
KNOWN = {
    "card_arrival": [
        "how long does it take for my card to arrive",
        "when will I get my card",
        "my card has not been delivered",
        "track my card delivery",
    ],
    "exchange_rate": [
        "what exchange rate do you use",
        "how are currency rates calculated",
        "exchange rate for euros",
    ],
}
GIFT_ANSWER = "Gift cards are sold in every branch and on our website."


def gap_settings(tmp_path: Any, **gaps: Any) -> Settings:
    return load_settings(home=tmp_path, gaps={"min_examples": 10, **gaps})


async def seed_gaps(db: Database) -> dict[str, list[int]]:
    log = Log(db)
    ids: dict[str, list[int]] = {"gift": [], "crypto": [], "card": []}
    for i, text in enumerate(GIFT):
        mid = await log.turn(text, verdict="out_of_scope", decision="handoff", intent="oos")
        ids["gift"].append(mid)
        await log.agent_reply(mid, GIFT_ANSWER if i % 4 else "Sorry, ask in a branch.")
    for text in CRYPTO:
        ids["crypto"].append(
            await log.turn(text, verdict="out_of_scope", decision="handoff", intent="oos")
        )
    for text in CARD_ARRIVAL:
        ids["card"].append(await log.turn(text, verdict="ambiguous", decision="suggest"))
    # Two gift-card questions in the week before: the trend's baseline.
    for text in ("gift card price", "do you have gift cards"):
        await log.turn(
            text, verdict="out_of_scope", decision="handoff", when=START - timedelta(days=2)
        )
    async with db.session() as s:
        for intent, questions in KNOWN.items():
            for q in questions:
                s.add(
                    KnowledgePair(
                        question=q, answer="...", intent=intent, content_hash=f"{intent}:{q}"
                    )
                )
    return ids


@pytest.mark.slow
async def test_two_messages_of_a_known_intent_are_a_topic_beside_its_examples(
    db: Database, embedder: Any, tmp_path: Any
) -> None:
    # Two messages are under the topic minimum (3), but with the known intent's examples that
    # the clustering puts beside them they are its badly learned part: a topic, "existing".
    ids = await seed_gaps(db)
    log = Log(db)
    rates = [
        await log.turn(text, verdict="ambiguous", decision="suggest", intent="exchange_rate")
        # Worded well clear of gaps.new_below (0.9), since the encoder's precision (int8, bf16)
        # follows the machine: an earlier wording sat at 0.897 on one and passed on another.
        for text in (
            "what exchange rate do you apply to euros",
            "how do you calculate the exchange rate",
        )
    ]
    result = await mine(gap_settings(tmp_path), db, embedder, since=START, until=NOW)
    topics = {frozenset(t.message_ids): t for t in result.topics}
    assert frozenset(ids["gift"]) in topics and frozenset(ids["card"]) in topics
    rate = topics[frozenset(rates)]
    assert rate.nearest_intent == "exchange_rate" and rate.novelty == "existing", rate
    assert result.details["method"] == "spectral-consensus-known"


@pytest.mark.slow
async def test_mining_accepting_merging_dismissing(
    db: Database, embedder: Any, tmp_path: Any
) -> None:
    settings = gap_settings(tmp_path)
    ids = await seed_gaps(db)
    result = await mine(settings, db, embedder, since=START, until=NOW)
    assert result.mined == len(GIFT) + len(CRYPTO) + len(CARD_ARRIVAL)
    topics = {frozenset(t.message_ids): t for t in result.topics}
    gift = topics[frozenset(ids["gift"])]
    crypto = topics[frozenset(ids["crypto"])]
    card = topics[frozenset(ids["card"])]
    assert [t.size for t in result.topics] == sorted((t.size for t in result.topics), reverse=True)
    assert "gift" in gift.name and len(gift.examples) == 5
    assert gift.novelty == "new" and crypto.novelty == "new"
    assert card.nearest_intent == "card_arrival" and card.novelty == "existing"
    assert card.similarity is not None and gift.similarity is not None
    assert card.similarity > gift.similarity
    assert gift.previous == 2 and card.previous == 0
    assert gift.answers[0]["text"] == GIFT_ANSWER and gift.answers[0]["count"] == 9
    assert gift.reasons == {"out_of_scope": len(GIFT)}

    rows = await store_topics(db, result)
    shown = json.dumps([r.model_dump(mode="json") for r in rows])
    assert "jane.doe@example.com" not in shown and "7946" not in shown
    assert "{{Email}}" in shown and "{{Phone Number}}" in shown
    by_ids = {frozenset(r.message_ids): r for r in rows}
    gift_row, crypto_row = by_ids[frozenset(ids["gift"])], by_ids[frozenset(ids["crypto"])]
    card_row = by_ids[frozenset(ids["card"])]
    scrub = Scrubber()
    known = {"card_arrival", "exchange_rate"}

    # Too few examples for a new intent: refused, nothing changed.
    with pytest.raises(InputError, match="5 more needed"):
        await accept_topic(
            db,
            crypto_row.id,
            intent="crypto",
            answer="No.",
            by="root",  # type: ignore[arg-type]
            min_examples=10,
            known=known,
            scrubber=scrub,
        )
    with pytest.raises(InputError, match="already an intent"):
        await accept_topic(
            db,
            gift_row.id,
            intent="card_arrival",
            answer="x",
            by="root",  # type: ignore[arg-type]
            min_examples=10,
            known=known,
            scrubber=scrub,
        )
    async with db.session() as s:
        assert (await s.exec(select(TrainingRun))).all() == []

    done = await accept_topic(
        db,
        gift_row.id,
        intent="gift_cards",
        answer=GIFT_ANSWER,
        by="root",  # type: ignore[arg-type]
        min_examples=10,
        known=known,
        scrubber=scrub,
    )
    assert done.topic.status == "accepted" and done.topic.intent == "gift_cards"
    async with db.session() as s:
        labels = (
            await s.exec(select(Message.corrected_intent).where(col(Message.id).in_(ids["gift"])))
        ).all()
        pairs = (
            await s.exec(select(KnowledgePair).where(KnowledgePair.intent == "gift_cards"))
        ).all()
        runs = (await s.exec(select(TrainingRun))).all()
    assert labels == ["gift_cards"] * len(GIFT)
    assert len(pairs) == len(GIFT) and {p.answer for p in pairs} == {GIFT_ANSWER}
    assert all("@" not in p.question for p in pairs)
    assert [(r.kind, r.status, r.params) for r in runs] == [
        ("retrain", "queued", {"intent": True, "index": True})
    ]
    with pytest.raises(ConflictError):
        await dismiss_topic(db, gift_row.id, by="root")  # type: ignore[arg-type]

    merged = await merge_topic(
        db,
        card_row.id,
        intent="card_arrival",
        by="root",
        known=known,  # type: ignore[arg-type]
    )
    assert merged.topic.status == "merged" and merged.run is not None
    # The retraining still waiting serves the merge too: one run, not one per topic.
    assert done.run is not None and merged.run.id == done.run.id
    async with db.session() as s:
        runs = (await s.exec(select(TrainingRun))).all()
    assert [(r.status, r.params) for r in runs] == [("queued", {"intent": True, "index": True})]
    async with db.session() as s:
        labels = (
            await s.exec(select(Message.corrected_intent).where(col(Message.id).in_(ids["card"])))
        ).all()
    assert labels == ["card_arrival"] * len(CARD_ARRIVAL)
    with pytest.raises(InputError, match="not a known intent"):
        await merge_topic(db, crypto_row.id, intent="nope", by="root", known=known)  # type: ignore[arg-type]

    await dismiss_topic(db, crypto_row.id, by="root")  # type: ignore[arg-type]
    # Mining again: labelled and dismissed messages are not gaps any more.
    again = await mine(settings, db, embedder, since=START, until=NOW)
    assert again.mined == 0 and again.topics == []
    await store_topics(db, again)
    async with db.session() as s:
        statuses = sorted((await s.exec(select(GapTopic.status))).all())
    assert statuses == ["accepted", "dismissed", "merged"]


def test_answers_ranked_by_how_often_and_how_agreed() -> None:
    ranked = rank_answers(
        [
            "Gift cards are sold in every branch.",
            "Gift cards are sold in every branch.",
            "gift cards are sold  in every branch.",
            "Gift cards are sold online and in every branch.",
            "No idea.",
        ]
    )
    assert ranked[0] == {
        "text": "Gift cards are sold in every branch.",
        "count": 3,
        "score": ranked[0]["score"],
    }
    assert ranked[1]["text"].startswith("Gift cards are sold online")
    assert ranked[-1]["text"] == "No idea."
    assert rank_answers([]) == []


async def test_scheduled_mining_is_due_only_when_idle_and_old(db: Database) -> None:
    from bot.gaps import due_for_mining
    from bot.jobs import enqueue

    every = timedelta(hours=24)
    assert await due_for_mining(db, every)
    run = await enqueue(db, "gaps", {})
    assert not await due_for_mining(db, every)  # queued
    async with db.session() as s:
        row = await s.get(TrainingRun, run.id)
        assert row is not None
        row.status = "succeeded"
        s.add(row)
    assert not await due_for_mining(db, every)  # just ran
    assert await due_for_mining(db, every, now=datetime.now(UTC) + timedelta(hours=25))


async def test_topics_resolved_before_a_retrain_starts_share_it(db: Database) -> None:
    from tests.bot.gap_fixtures import GIFT_ANSWER as ANSWER
    from tests.bot.gap_fixtures import stored_topics

    topics = await stored_topics(db)
    known = {"cancel_order"}
    merged = await merge_topic(
        db, topics["crypto"].id, intent="cancel_order", by="root", known=known
    )  # type: ignore[arg-type]
    assert merged.run is not None and merged.run.params == {"intent": True}
    async with db.session() as s:
        row = await s.get(TrainingRun, merged.run.id)
        assert row is not None
        row.status = "running"  # started: it may have read the labels already
        s.add(row)
    done = await accept_topic(
        db,
        topics["gift"].id,
        intent="gift_cards",
        answer=ANSWER,
        by="root",
        min_examples=10,
        known=known,
        scrubber=Scrubber(),
    )
    assert done.run is not None and done.run.id != merged.run.id
    async with db.session() as s:
        runs = (await s.exec(select(TrainingRun).order_by(col(TrainingRun.id)))).all()
    assert [(r.status, r.params) for r in runs] == [
        ("running", {"intent": True}),
        ("queued", {"intent": True, "index": True}),
    ]
