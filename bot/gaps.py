"""Knowledge gaps: what customers ask that the bot cannot answer, grouped into topics.

The miner takes the customer messages of a period that the bot did not answer well:

- ``out_of_scope``: handed off because the intent was out of scope or under the confidence
  threshold; ``handoff``: handed off because nothing relevant was retrieved (an explicit request
  for a human is not a gap);
- ``ambiguous``: the top two intents were too close;
- ``rejected``: an agent rejected the suggested reply; ``edited``: an agent sent it heavily
  edited (word overlap under ``gaps.heavy_edit``);
- ``negative_feedback``: the customer rated the reply at or under ``gaps.negative_rating``.

Messages an agent already labelled and messages of dismissed topics are left out. The rest are
scrubbed of personal data, embedded with the retrieval encoder and clustered by
:func:`retrieval.discovery.discover` (no topic count to set), beside examples of the known
intents so that a few messages of an intent the model learned badly make a topic with them.
Each topic gets its size, the count of similar messages in the period before (the trend), its
most central messages, a name from its key phrases, the nearest known intent with its
similarity ("new" under ``gaps.new_below``, else "existing": an intent the model learned badly)
and the agents' replies to its messages ranked as candidate answers. Only scrubbed text is
stored.

An admin then accepts a topic as a new intent (its messages are labelled, the chosen answer
becomes a knowledge pair for each of them, and the gated retraining is queued), merges it into
a known intent (labels only, then retraining), or dismisses it.
"""

from __future__ import annotations

import logging
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import numpy as np
from sqlmodel import col, delete, select

from bot.errors import ConflictError, InputError, NotFoundError
from bot.importer import IMPORT_CHANNEL, add_pair
from bot.jobs import job_command
from bot.scrub import Scrubber
from bot.settings import Settings
from bot.storage.db import Database
from bot.storage.models import (
    Feedback,
    GapStatus,
    GapTopic,
    KnowledgePair,
    Message,
    Role,
    Suggestion,
    SuggestionStatus,
    TrainingRun,
    utcnow,
)
from retrieval.consensus import lcs_f1, words
from retrieval.discovery import NOISE, Clustering, discover

log = logging.getLogger("deskbot.gaps")

REASONS = ("out_of_scope", "handoff", "ambiguous", "rejected", "edited", "negative_feedback")
EXAMPLES_PER_TOPIC = 5
ANSWERS_PER_TOPIC = 5
INTENT_EXAMPLES_CAP = 64  # per known intent, for its centroid
INTENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
MAX_ANSWER_CHARS = 4000
_PLACEHOLDER = re.compile(r"\{\{[^{}]{0,64}\}\}")


class Encoder(Protocol):
    """What the miner needs from an embedder (``retrieval.embedder.Embedder``)."""

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray: ...


@dataclass(frozen=True, slots=True)
class GapMessage:
    id: int
    conversation_id: int
    text: str  # as the customer wrote it; scrub before showing
    reasons: tuple[str, ...]


@dataclass
class TopicDraft:
    """A mined topic before it is stored."""

    name: str
    message_ids: list[int]
    members: list[dict[str, Any]]
    examples: list[str]
    key_phrases: list[str]
    nearest_intent: str | None
    similarity: float | None
    novelty: str
    answers: list[dict[str, Any]]
    reasons: dict[str, int]
    previous: int = 0

    @property
    def size(self) -> int:
        return len(self.message_ids)


@dataclass
class MiningResult:
    start: datetime
    end: datetime
    mined: int  # gap messages found in the period
    unclustered: int  # in no topic large enough
    topics: list[TopicDraft] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "period": {"start": self.start.isoformat(), "end": self.end.isoformat()},
            "messages": self.mined,
            "unclustered": self.unclustered,
            "topics": len(self.topics),
            "clustering": self.details,
        }


# -- which messages are gaps ---------------------------------------------------------------


def _aware(moment: datetime) -> datetime:
    from datetime import UTC

    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


async def dismissed_message_ids(db: Database) -> set[int]:
    async with db.session() as s:
        rows = (
            await s.exec(select(GapTopic.message_ids).where(GapTopic.status == GapStatus.DISMISSED))
        ).all()
    return {int(i) for ids in rows for i in ids}


async def select_gap_messages(
    db: Database,
    start: datetime,
    end: datetime,
    *,
    human_label: str = "human_agent",
    heavy_edit: float = 0.5,
    negative_rating: int = 2,
    limit: int = 20_000,
    exclude: Iterable[int] = (),
) -> list[GapMessage]:
    """Customer messages of ``[start, end)`` the bot did not answer well (module docstring)."""
    start, end = _aware(start), _aware(end)
    skip = set(exclude)
    in_period = (col(Message.created_at) >= start) & (col(Message.created_at) < end)
    async with db.session() as s:
        customers = (
            await s.exec(
                select(Message)
                .where(Message.role == Role.CUSTOMER, Message.channel != IMPORT_CHANNEL)
                .where(in_period)
                .where(col(Message.corrected_intent).is_(None), col(Message.decision).is_not(None))
                .order_by(col(Message.id).desc())
                .limit(limit)
            )
        ).all()
        suggestions = (
            await s.exec(
                select(
                    Suggestion.message_id,
                    Suggestion.status,
                    Suggestion.draft,
                    Suggestion.final_text,
                )
                .join(Message, col(Message.id) == col(Suggestion.message_id))
                .where(in_period)
                .where(
                    col(Suggestion.status).in_([SuggestionStatus.REJECTED, SuggestionStatus.EDITED])
                )
            )
        ).all()
        # Feedback is on the reply; the reply's details name the customer message it answered.
        rated = (
            await s.exec(
                select(Message.details)
                .join(Feedback, col(Feedback.message_id) == col(Message.id))
                .where(col(Feedback.rating) <= negative_rating)
                .where(col(Message.created_at) >= start)
            )
        ).all()
    reasons: dict[int, list[str]] = defaultdict(list)
    for message_id, status, draft, final in suggestions:
        if status == SuggestionStatus.REJECTED:
            reasons[message_id].append("rejected")
        elif lcs_f1(words(draft), words(final or "")) < heavy_edit:
            reasons[message_id].append("edited")
    for details in rated:
        reply_to = (details or {}).get("reply_to")
        if isinstance(reply_to, int) and "negative_feedback" not in reasons[reply_to]:
            reasons[reply_to].append("negative_feedback")
    out = []
    for m in customers:
        assert m.id is not None
        if m.id in skip:
            continue
        why: list[str] = []
        human = m.intent == human_label and m.verdict != "out_of_scope"
        if m.verdict in ("out_of_scope", None) and not human:
            why.append("out_of_scope")
        elif m.decision == "handoff" and not human:
            why.append("handoff")
        if m.verdict == "ambiguous":
            why.append("ambiguous")
        why += reasons.get(m.id, [])
        if why:
            out.append(GapMessage(m.id, m.conversation_id, m.text, tuple(why)))
    out.reverse()  # oldest first
    return out


# -- known intents ---------------------------------------------------------------------------


async def intent_examples(db: Database, settings: Settings) -> dict[str, list[str]]:
    """Up to ``INTENT_EXAMPLES_CAP`` example texts per known intent: knowledge pairs'
    questions, labelled messages and ``learning.base_data``."""
    found: dict[str, list[str]] = defaultdict(list)

    def add(intent: str | None, text: str) -> None:
        if intent and intent != settings.intent.oos_label:
            bucket = found[intent]
            if len(bucket) < INTENT_EXAMPLES_CAP:
                bucket.append(text)

    async with db.session() as s:
        for question, intent in (
            await s.exec(
                select(KnowledgePair.question, KnowledgePair.intent)
                .where(col(KnowledgePair.active), col(KnowledgePair.intent).is_not(None))
                .order_by(col(KnowledgePair.id))
            )
        ).all():
            add(intent, question)
        for text, intent, corrected, channel in (
            await s.exec(
                select(Message.text, Message.intent, Message.corrected_intent, Message.channel)
                .where(Message.role == Role.CUSTOMER)
                .where(
                    col(Message.corrected_intent).is_not(None)
                    | ((col(Message.channel) == IMPORT_CHANNEL) & col(Message.intent).is_not(None))
                )
                .order_by(col(Message.id))
            )
        ).all():
            add(corrected or (intent if channel == IMPORT_CHANNEL else None), text)
    if settings.learning.base_data:
        from finetune.intent.data import read_csv

        base = read_csv(settings.learning.base_data)
        for text, label in zip(base.texts, base.labels, strict=True):
            add(label, text)
    return dict(found)


async def known_intents(db: Database, settings: Settings, extra: Iterable[str] = ()) -> set[str]:
    names = set(await intent_examples(db, settings)) | set(extra)
    names.discard(settings.intent.oos_label)
    return names


# -- naming and answers --------------------------------------------------------------------


def key_phrases(topic_texts: Sequence[Sequence[str]], top: int = 5) -> list[list[str]]:
    """Per topic, its most distinctive words and word pairs: class-based TF-IDF (a topic's
    texts are one document), stop words out."""
    from sklearn.feature_extraction.text import CountVectorizer

    docs = [" ".join(_PLACEHOLDER.sub(" ", t) for t in texts) for texts in topic_texts]
    if not docs:
        return []
    try:
        vec = CountVectorizer(
            ngram_range=(1, 2),
            stop_words="english",
            token_pattern=r"(?u)\b[^\W\d_]{2,}\b",
            lowercase=True,
        )
        counts = vec.fit_transform(docs).toarray().astype(float)
    except ValueError:  # only stop words
        return [[] for _ in docs]
    terms = vec.get_feature_names_out()
    tf = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
    avg_words = counts.sum() / len(docs)
    idf = np.log1p(avg_words / np.maximum(counts.sum(axis=0), 1.0))
    weight = tf * idf
    out = []
    for row in weight:
        order = [i for i in np.argsort(-row) if row[i] > 0]
        out.append([str(terms[i]) for i in order[:top]])
    return out


def topic_name(phrases: Sequence[str], fallback: str) -> str:
    """A word pair among the top phrases ("cancel subscription") if there is one, else the top
    word."""
    for phrase in phrases[:3]:
        if " " in phrase:
            return phrase
    return phrases[0] if phrases else fallback


def rank_answers(replies: Sequence[str], top: int = ANSWERS_PER_TOPIC) -> list[dict[str, Any]]:
    """Distinct replies, the most given and most agreed-with first: score = how many messages
    got it + its mean word overlap with the other replies given."""
    counts: Counter[str] = Counter()
    first: dict[str, str] = {}
    for reply in replies:
        key = " ".join(reply.split()).casefold()
        if key:
            counts[key] += 1
            first.setdefault(key, reply.strip())
    keys = list(counts)
    toks = {k: words(k) for k in keys}
    total = sum(counts.values())
    ranked: list[dict[str, Any]] = []
    for k in keys:
        others = total - counts[k]
        agree = (
            sum(counts[o] * lcs_f1(toks[k], toks[o]) for o in keys if o != k) / others
            if others
            else 0.0
        )
        ranked.append({"text": first[k], "count": counts[k], "score": round(counts[k] + agree, 4)})
    ranked.sort(key=lambda a: (-a["score"], -a["count"], a["text"]))
    return ranked[:top]


async def agent_replies(db: Database, message_ids: Sequence[int]) -> dict[int, list[str]]:
    """What agents sent in answer to each message: approved or edited suggestions, and their
    own replies (``details.reply_to``)."""
    wanted = set(message_ids)
    out: dict[int, list[str]] = defaultdict(list)
    if not wanted:
        return out
    async with db.session() as s:
        for chunk in _chunks(sorted(wanted), 500):
            for message_id, final in (
                await s.exec(
                    select(Suggestion.message_id, Suggestion.final_text).where(
                        col(Suggestion.message_id).in_(chunk),
                        col(Suggestion.status).in_(
                            [SuggestionStatus.APPROVED, SuggestionStatus.EDITED]
                        ),
                    )
                )
            ).all():
                if final:
                    out[message_id].append(final)
        first = min(wanted)
        rows = (
            await s.exec(
                select(Message.text, Message.details).where(
                    Message.role == Role.AGENT,
                    Message.decision == "agent",
                    col(Message.id) > first,
                )
            )
        ).all()
    for text, details in rows:
        reply_to = (details or {}).get("reply_to")
        if reply_to in wanted:
            out[reply_to].append(text)
    return out


def _chunks(items: Sequence[int], size: int) -> Iterable[list[int]]:
    for i in range(0, len(items), size):
        yield list(items[i : i + size])


# -- mining ----------------------------------------------------------------------------------


def _centroid(vectors: np.ndarray) -> np.ndarray:
    c = vectors.mean(axis=0)
    return c / max(float(np.linalg.norm(c)), 1e-12)


async def mine(
    settings: Settings,
    db: Database,
    encoder: Encoder,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    scrubber: Scrubber | None = None,
    cluster: Callable[..., Clustering] = discover,
) -> MiningResult:
    """Find the topics of the period ``[since, until)`` (default: the last
    ``gaps.period_days``). Runs the encoder and clustering in this thread: call it from a job
    or an executor, not from the event loop."""
    cfg = settings.gaps
    end = _aware(until or utcnow())
    start = _aware(since) if since else end - timedelta(days=cfg.period_days)
    if start >= end:
        raise InputError(f"--since {start.date()} is not before {end.date()}")
    scrubber = scrubber or Scrubber.from_settings(settings.learning)
    skip = await dismissed_message_ids(db)
    select_args: dict[str, Any] = {
        "human_label": settings.intent.human_label,
        "heavy_edit": cfg.heavy_edit,
        "negative_rating": cfg.negative_rating,
        "limit": cfg.max_messages,
        "exclude": skip,
    }
    found = await select_gap_messages(db, start, end, **select_args)
    result = MiningResult(start, end, len(found), 0)
    if not found:
        return result
    texts = [scrubber(m.text) for m in found]
    vectors = np.asarray(encoder.encode(texts), dtype=np.float32)
    known = await intent_examples(db, settings)
    names = sorted(known)
    known_vectors: list[np.ndarray] = []
    if names:
        flat = np.asarray(encoder.encode([t for n in names for t in known[n]]), dtype=np.float32)
        bounds = np.cumsum([len(known[n]) for n in names])[:-1]
        known_vectors = np.split(flat, bounds)
    intent_centroids = np.stack([_centroid(v) for v in known_vectors]) if names else None
    clustering = (
        cluster(vectors, texts=texts, known=known_vectors)
        if len(found) >= cfg.min_topic_size or known_vectors
        else None
    )
    labels = clustering.labels if clustering is not None else np.full(len(found), NOISE, np.int64)
    if clustering is not None:
        result.details = {"method": clustering.method, **clustering.details}
    # A topic needs min_topic_size members, counting the known intent's examples that joined it.
    beside = clustering.known_members if clustering is not None else ()
    members_of: dict[int, list[int]] = defaultdict(list)
    for i, t in enumerate(labels.tolist()):
        if t != NOISE:
            members_of[t].append(i)
    groups = [
        g
        for t, g in sorted(members_of.items())
        if len(g) + (beside[t] if t < len(beside) else 0) >= cfg.min_topic_size
    ]
    result.unclustered = len(found) - sum(len(g) for g in groups)
    if not groups:
        return result

    replies = await agent_replies(db, [m.id for m in found])
    phrases = key_phrases([[texts[i] for i in g] for g in groups])
    centroids = []
    for t, members in enumerate(groups):
        centroid = _centroid(vectors[members])
        centroids.append(centroid)
        closeness = vectors[members] @ centroid
        by_centrality = [members[j] for j in np.argsort(-closeness)]
        examples: list[str] = []
        for i in by_centrality:
            if texts[i] not in examples:
                examples.append(texts[i])
            if len(examples) == EXAMPLES_PER_TOPIC:
                break
        nearest, similarity, novelty = None, None, "new"
        if intent_centroids is not None:
            sims = intent_centroids @ centroid
            best = int(np.argmax(sims))
            nearest, similarity = names[best], round(float(sims[best]), 4)
            novelty = "new" if similarity < cfg.new_below else "existing"
        answers = rank_answers([scrubber(r) for i in members for r in replies.get(found[i].id, [])])
        reasons = Counter(r for i in members for r in found[i].reasons)
        result.topics.append(
            TopicDraft(
                name=topic_name(phrases[t], f"topic {t + 1}"),
                message_ids=[found[i].id for i in by_centrality],
                members=[
                    {"id": found[i].id, "text": texts[i], "reasons": list(found[i].reasons)}
                    for i in by_centrality
                ],
                examples=examples,
                key_phrases=phrases[t],
                nearest_intent=nearest,
                similarity=similarity,
                novelty=novelty,
                answers=answers,
                reasons=dict(sorted(reasons.items())),
            )
        )

    # Trend: the previous period's gap messages, each counted for the nearest topic when it is
    # as close to that topic's centre as most of the topic's own messages are.
    before = await select_gap_messages(db, start - (end - start), start, **select_args)
    if before:
        prev = np.asarray(encoder.encode([scrubber(m.text) for m in before]), dtype=np.float32)
        cents = np.stack(centroids)
        radius = [float(np.quantile(vectors[g] @ cents[t], 0.1)) for t, g in enumerate(groups)]
        sims = prev @ cents.T
        for row in sims:
            t = int(np.argmax(row))
            if row[t] >= radius[t]:
                result.topics[t].previous += 1
    result.topics.sort(key=lambda d: (-d.size, d.name))
    return result


def trend(size: int, previous: int) -> float | None:
    """Relative change against the previous period; None when there was nothing before."""
    return None if previous == 0 else round((size - previous) / previous, 4)


async def store_topics(db: Database, result: MiningResult) -> list[GapTopic]:
    """Replace the open topics by the newly mined ones (resolved topics are kept)."""
    async with db.session() as s:
        await s.exec(delete(GapTopic).where(col(GapTopic.status) == GapStatus.OPEN))
        rows = []
        for d in result.topics:
            row = GapTopic(
                name=d.name[:128],
                size=d.size,
                previous=d.previous,
                message_ids=d.message_ids,
                members=d.members,
                examples=d.examples,
                key_phrases=d.key_phrases,
                nearest_intent=d.nearest_intent,
                similarity=d.similarity,
                novelty=d.novelty,
                answers=d.answers,
                reasons=d.reasons,
                period_start=result.start,
                period_end=result.end,
            )
            s.add(row)
            rows.append(row)
        await s.flush()
    return rows


def topic_json(t: GapTopic, min_examples: int, *, full: bool = False) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": t.id,
        "name": t.name,
        "status": t.status,
        "size": t.size,
        "previous": t.previous,
        "trend": trend(t.size, t.previous),
        "examples": t.examples,
        "key_phrases": t.key_phrases,
        "nearest_intent": t.nearest_intent,
        "similarity": t.similarity,
        "novelty": t.novelty,
        "answers": t.answers,
        "reasons": t.reasons,
        "intent": t.intent,
        "examples_needed": max(0, min_examples - t.size),
        "min_examples": min_examples,
        "period": {"start": t.period_start.isoformat(), "end": t.period_end.isoformat()},
        "created_at": t.created_at.isoformat(),
        "resolved_at": t.resolved_at.isoformat() if t.resolved_at else None,
        "resolved_by": t.resolved_by,
    }
    if full:
        data["messages"] = t.members
    return data


# -- what an admin does with a topic ---------------------------------------------------------


async def _queue_retrain(s: Any, params: dict[str, Any]) -> TrainingRun:
    """The queued retraining, or a new one: a retrain reads the labels when it starts, so one
    still waiting serves every topic resolved before then (its flags widened to cover both)."""
    job_command("retrain", params)  # validates, as bot.jobs.enqueue does
    waiting = (
        await s.exec(
            select(TrainingRun)
            .where(TrainingRun.kind == "retrain", TrainingRun.status == "queued")
            .order_by(col(TrainingRun.id).desc())
            .limit(1)
            .with_for_update()
        )
    ).first()
    if waiting is None:
        run = TrainingRun(kind="retrain", params=params)
    else:
        run = waiting
        old = dict(run.params or {})
        if not any(old.get(flag) for flag in ("intent", "index", "generator")):
            old.update(intent=True, index=True)  # no flag: what `deskbot retrain` does then
        run.params = {k: bool(old.get(k)) or bool(params.get(k)) for k in {*old, *params}}
    s.add(run)
    return run


def check_intent_name(intent: Any) -> str:
    if not isinstance(intent, str) or not INTENT_NAME.fullmatch(intent.strip()):
        raise InputError(
            "'intent' must be 1 to 128 letters, digits, '_', '.' or '-', starting with a "
            "letter or digit"
        )
    return intent.strip()


async def _open_topic(s: Any, topic_id: int) -> GapTopic:
    topic = await s.get(GapTopic, topic_id, with_for_update=True)
    if topic is None:
        raise NotFoundError("no such topic")
    if topic.status != GapStatus.OPEN:
        raise ConflictError(f"this topic was already {topic.status}")
    return topic


async def _label(s: Any, message_ids: Sequence[int], intent: str) -> list[Message]:
    rows = []
    for chunk in _chunks(list(message_ids), 500):
        rows += (await s.exec(select(Message).where(col(Message.id).in_(chunk)))).all()
    for m in rows:
        m.corrected_intent = intent
        s.add(m)
    return rows


@dataclass(frozen=True)
class Resolution:
    topic: GapTopic
    pairs: list[KnowledgePair]
    run: TrainingRun | None


async def accept_topic(
    db: Database,
    topic_id: int,
    *,
    intent: Any,
    answer: Any,
    by: str,
    min_examples: int,
    known: set[str],
    scrubber: Scrubber,
) -> Resolution:
    """The topic becomes intent ``intent``: its messages are labelled with it, each becomes a
    knowledge pair with ``answer``, and the gated retraining (intent and index) is queued, in
    one transaction."""
    intent = check_intent_name(intent)
    if not isinstance(answer, str) or not answer.strip():
        raise InputError("'answer' must be the reply to give, a non-empty text")
    if len(answer) > MAX_ANSWER_CHARS:
        raise InputError(f"'answer' is longer than {MAX_ANSWER_CHARS} characters")
    answer = scrubber(answer.strip())
    async with db.session() as s:
        topic = await _open_topic(s, topic_id)
        if intent in known:
            raise InputError(f"{intent!r} is already an intent: merge the topic into it instead")
        if len(topic.message_ids) < min_examples:
            raise InputError(
                f"a new intent needs at least {min_examples} examples; this topic has "
                f"{len(topic.message_ids)} ({min_examples - len(topic.message_ids)} more needed)"
            )
        messages = await _label(s, topic.message_ids, intent)
        pairs = []
        for m in messages:
            pair = await add_pair(s, scrubber(m.text), answer, intent, "admin", f"gap:{topic.id}")
            if pair is not None:
                pairs.append(pair)
        run = await _queue_retrain(s, {"intent": True, "index": True})
        topic.status, topic.intent = GapStatus.ACCEPTED, intent
        topic.resolved_by, topic.resolved_at = by, utcnow()
        s.add(topic)
        await s.flush()
    log.info("topic %s accepted as intent %r by %s (%d pairs)", topic_id, intent, by, len(pairs))
    return Resolution(topic, pairs, run)


async def merge_topic(
    db: Database, topic_id: int, *, intent: Any, by: str, known: set[str]
) -> Resolution:
    """The topic's messages are labelled with the known intent ``intent`` and the gated intent
    retraining is queued."""
    intent = check_intent_name(intent)
    if intent not in known:
        raise InputError(f"{intent!r} is not a known intent: accept the topic as a new one")
    async with db.session() as s:
        topic = await _open_topic(s, topic_id)
        await _label(s, topic.message_ids, intent)
        run = await _queue_retrain(s, {"intent": True})
        topic.status, topic.intent = GapStatus.MERGED, intent
        topic.resolved_by, topic.resolved_at = by, utcnow()
        s.add(topic)
        await s.flush()
    log.info("topic %s merged into intent %r by %s", topic_id, intent, by)
    return Resolution(topic, [], run)


async def dismiss_topic(db: Database, topic_id: int, *, by: str) -> GapTopic:
    """Not a gap worth filling; its messages are not mined again."""
    async with db.session() as s:
        topic = await _open_topic(s, topic_id)
        topic.status = GapStatus.DISMISSED
        topic.resolved_by, topic.resolved_at = by, utcnow()
        s.add(topic)
    return topic


# -- on a schedule -----------------------------------------------------------------------------


async def last_mining_run(s: Any) -> TrainingRun | None:
    """The newest knowledge-gaps mining job, whatever its state."""
    return (
        await s.exec(
            select(TrainingRun)
            .where(TrainingRun.kind == "gaps")
            .order_by(col(TrainingRun.id).desc())
            .limit(1)
        )
    ).first()


async def due_for_mining(db: Database, every: timedelta, now: datetime | None = None) -> bool:
    """True when no mining job is queued or running and the last one is older than ``every``."""
    now = _aware(now or utcnow())
    async with db.session() as s:
        last = await last_mining_run(s)
    if last is None:
        return True
    if last.status in ("queued", "running"):
        return False
    return _aware(last.created_at) <= now - every


async def schedule_mining(
    settings: Settings,
    db: Database,
    wake: Callable[[], None] | None = None,
    *,
    check_s: float = 60.0,
) -> None:
    """Queue a mining job every ``gaps.every_hours`` (run by whoever runs the jobs). Two
    processes may both queue one at the same moment; the second run only re-mines."""
    import asyncio

    from bot.jobs import enqueue

    every = timedelta(hours=settings.gaps.every_hours)
    while True:
        try:
            if await due_for_mining(db, every):
                run = await enqueue(db, "gaps", {})
                log.info("scheduled knowledge-gap mining queued as job %s", run.id)
                if wake is not None:
                    wake()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("could not queue the scheduled knowledge-gap mining")
        await asyncio.sleep(min(check_s, every.total_seconds()))
