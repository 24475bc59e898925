"""Durable outbound delivery through the ``outbox`` table.

The reply path calls :func:`enqueue` inside the transaction that stores the bot's (or an
agent's) message, so a reply exists if and only if its delivery does. A
:class:`DeliveryWorker` then sends due rows through their channel's connector:

* **claim**: due rows (``pending`` and due, or ``sending`` whose lease ran out because a worker
  died) are taken with a conditional ``UPDATE ... WHERE status = ? AND attempts = ?``, so two
  workers never hold the same row; PostgreSQL also selects them ``FOR UPDATE SKIP LOCKED``.
  A row waits while an older row of its conversation is unsent, keeping replies in order.
* **send** outside any transaction, cut off at half the lease so a live worker never loses
  its lease mid-send.
* **confirm**: ``sent`` is written by the same conditional update on the claim, once the
  platform has accepted; a ``sent`` row is never claimed again.
* **retry** network errors, 5xx and 429 after ``Retry-After`` when the platform gave one,
  else exponential backoff with full jitter; ``failed`` after ``max_attempts`` or on a
  permanent error.

The one window for a duplicate is a crash between the platform accepting a message and the
confirming commit; the generic webhook sends the row id as an idempotency key for that.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, update
from sqlalchemy.orm import aliased
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.errors import ConflictError, InputError, NotFoundError
from bot.metrics import DEAD_LETTERS
from bot.storage.db import Database
from bot.storage.models import Conversation, Message, Outbox, OutboxStatus, utcnow
from connectors.base import DeliveryResult, OutboundMessage
from connectors.channels import ConnectorSet
from connectors.config import DeliverySettings
from connectors.errors import DeliveryError

log = logging.getLogger("deskbot.connectors.outbox")


def outbound_for(
    conversation: Conversation,
    text: str,
    *,
    reply_to: str | None = None,
    meta: dict[str, Any] | None = None,
) -> OutboundMessage:
    """A reply to ``conversation`` through the channel it came in on (bot or agent reply)."""
    if not conversation.external_id:
        raise InputError(
            f"conversation {conversation.id} on {conversation.channel!r} has no external id"
        )
    return OutboundMessage(
        channel=conversation.channel,
        conversation_external_id=conversation.external_id,
        text=text,
        reply_to=reply_to,
        meta=dict(meta or {}),
    )


async def enqueue(
    session: AsyncSession,
    conversation: Conversation,
    message: Message | None,
    outbound: OutboundMessage,
) -> Outbox:
    """Add a delivery in the caller's transaction; it becomes visible when that commits.

    Call :meth:`DeliveryWorker.wake` after the commit to send it without waiting a poll.
    """
    if outbound.channel != conversation.channel:
        raise InputError(
            f"outbound channel {outbound.channel!r} differs from the conversation's "
            f"{conversation.channel!r}"
        )
    if not outbound.text.strip():
        raise InputError("outbound message text is empty")
    if conversation.id is None or (message is not None and message.id is None):
        await session.flush()
    row = Outbox(
        conversation_id=conversation.id,  # type: ignore[arg-type]
        message_id=message.id if message is not None else None,
        channel=conversation.channel,
        payload=outbound.to_payload(),
        status=OutboxStatus.PENDING,
        next_try_at=utcnow(),
    )
    session.add(row)
    await session.flush()
    return row


def backoff_delay(
    attempt: int, settings: DeliverySettings, rng: random.Random, retry_after: float | None
) -> float:
    """Seconds before the next try: the platform's ``Retry-After`` (capped), else full jitter.

    The cap keeps a hostile or broken value (huge, infinite, NaN) from overflowing the date
    arithmetic or parking the row for ever.
    """
    if retry_after is not None:
        if not math.isfinite(retry_after):
            return settings.retry_after_max_s
        return min(max(0.0, retry_after), settings.retry_after_max_s)
    ceiling = min(settings.backoff_max_s, settings.backoff_base_s * 2 ** max(0, attempt - 1))
    return rng.uniform(0, ceiling)


@dataclass(frozen=True)
class _Claim:
    id: int
    attempt: int  # attempts after this claim; with the id it identifies the claim
    channel: str
    payload: dict[str, Any]
    deadline: datetime | None = None  # past it, the row goes to the dead letters


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


class DeliveryWorker:
    """Sends outbox rows until stopped; one per process, any number per database.

    The server owns its lifetime: ``await worker.start()`` at start-up, ``worker.wake()``
    after committing an enqueue, ``await worker.stop()`` at shutdown (in-flight sends finish;
    rows cut off are retried after their lease by whichever worker runs next).
    """

    def __init__(
        self,
        db: Database,
        connectors: ConnectorSet,
        settings: DeliverySettings,
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.db = db
        self.connectors = connectors
        self.settings = settings
        self._rng = rng or random.Random()
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        # SQLite has one writer: queueing our own writes here beats colliding in its busy
        # handler, which sleeps in steps of up to 100 ms.
        self._write_lock = asyncio.Lock() if db.is_sqlite else contextlib.nullcontext()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def start(self) -> None:
        if self.running:
            return
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="deskbot-delivery")

    def wake(self) -> None:
        self._wake.set()

    async def stop(self, grace_s: float | None = None) -> None:
        """Stop claiming; wait up to ``grace_s`` seconds for in-flight sends, then cancel."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        self._wake.set()
        try:
            await asyncio.wait_for(task, grace_s)
        except TimeoutError:
            log.warning("delivery worker cut off; its claimed rows retry after their lease")

    async def _run(self) -> None:
        while not self._stopping:
            try:
                handled = await self.run_once()
            except Exception:
                log.exception("delivery round failed; retrying after the poll interval")
                handled = 0
            if handled < self.settings.batch_size and not self._stopping:
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), self.settings.poll_interval_s)
                except TimeoutError:
                    pass

    async def run_once(self) -> int:
        """Claim due rows and deliver them; the number of rows handled."""
        claims = await self._claim()
        if claims:
            await asyncio.gather(*(self._deliver(c) for c in claims))
        return len(claims)

    async def _claim(self) -> list[_Claim]:
        now = utcnow()
        lease_until = now + timedelta(seconds=self.settings.lease_s)
        earlier = aliased(Outbox)
        blocked = exists().where(
            earlier.conversation_id == Outbox.conversation_id,
            earlier.id < Outbox.id,
            col(earlier.status).in_([OutboxStatus.PENDING, OutboxStatus.SENDING]),
        )
        query = (
            select(Outbox)
            .where(
                col(Outbox.status).in_([OutboxStatus.PENDING, OutboxStatus.SENDING]),
                Outbox.next_try_at <= now,
                ~blocked,
            )
            .order_by(col(Outbox.next_try_at), col(Outbox.id))
            .limit(self.settings.batch_size)
        )
        if not self.db.is_sqlite:
            query = query.with_for_update(skip_locked=True, of=Outbox)
        claims: list[_Claim] = []
        async with self._write_lock, self.db.session() as s:
            for row in (await s.exec(query)).all():
                row_id, status, attempts = row.id, row.status, row.attempts
                if status == OutboxStatus.SENDING:
                    log.warning(
                        "outbox %s: lease expired on attempt %d, taking over", row_id, attempts
                    )
                deadline = _aware(row.created_at) + timedelta(seconds=self.settings.deadline_s)
                if attempts >= self.settings.max_attempts or deadline <= now:
                    reason = "attempts" if attempts >= self.settings.max_attempts else "deadline"
                    error = (
                        row.last_error or "lease expired on the last attempt"
                        if reason == "attempts"
                        else f"past its delivery deadline ({row.last_error or 'never sent'})"
                    )
                    if await self._set(
                        s, row_id, status, attempts, status=OutboxStatus.FAILED, last_error=error
                    ):
                        DEAD_LETTERS.labels(reason).inc()
                    continue
                taken = await self._set(
                    s,
                    row_id,
                    status,
                    attempts,
                    status=OutboxStatus.SENDING,
                    attempts=attempts + 1,
                    next_try_at=lease_until,
                )
                if taken:
                    claims.append(
                        _Claim(row_id, attempts + 1, row.channel, dict(row.payload), deadline)  # type: ignore[arg-type]
                    )
        return claims

    @staticmethod
    async def _set(
        s: AsyncSession, row_id: int | None, seen_status: str, seen_attempts: int, **values: Any
    ) -> bool:
        """Update a row only if it is still as we saw it: the claim and confirm guard."""
        result = await s.exec(
            update(Outbox)
            .where(
                and_(
                    col(Outbox.id) == row_id,
                    col(Outbox.status) == seen_status,
                    col(Outbox.attempts) == seen_attempts,
                )
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        return result.rowcount == 1

    async def _deliver(self, claim: _Claim) -> None:
        try:
            connector = self.connectors.by_key(claim.channel)
        except NotFoundError as exc:
            await self._finish(claim, status=OutboxStatus.FAILED, last_error=exc.message)
            return
        outbound = OutboundMessage.from_payload(claim.payload, delivery_id=claim.id)
        try:
            result = await asyncio.wait_for(connector.send(outbound), self.settings.lease_s / 2)
        except DeliveryError as exc:
            await self._failed(claim, exc.message, exc.retryable, exc.retry_after)
        except TimeoutError:
            await self._failed(claim, f"{claim.channel}: send timed out", True, None)
        except Exception as exc:  # a connector bug: keep the row, retry with backoff
            log.exception("outbox %s: %s send raised", claim.id, claim.channel)
            await self._failed(claim, f"{type(exc).__name__}: {exc}", True, None)
        else:
            await self._sent(claim, outbound, result)

    async def _sent(self, claim: _Claim, outbound: OutboundMessage, result: DeliveryResult) -> None:
        payload = {
            **claim.payload,
            "delivered": {"external_message_id": result.external_message_id},
        }
        if not await self._finish(
            claim, status=OutboxStatus.SENT, sent_at=utcnow(), payload=payload, last_error=None
        ):
            log.error("outbox %s: sent but the claim was lost (lease too short?)", claim.id)
        else:
            log.info(
                "outbox %s: delivered to %s %s on attempt %d",
                claim.id,
                claim.channel,
                outbound.conversation_external_id,
                claim.attempt,
            )

    async def _failed(
        self, claim: _Claim, error: str, retryable: bool, retry_after: float | None
    ) -> None:
        delay = backoff_delay(claim.attempt, self.settings, self._rng, retry_after)
        next_try = utcnow() + timedelta(seconds=delay)
        in_time = claim.deadline is None or next_try < claim.deadline
        if retryable and claim.attempt < self.settings.max_attempts and in_time:
            log.warning(
                "outbox %s: attempt %d failed (%s); retrying in %.2fs",
                claim.id,
                claim.attempt,
                error,
                delay,
            )
            await self._finish(
                claim,
                status=OutboxStatus.PENDING,
                last_error=error,
                next_try_at=next_try,
            )
        else:
            if not retryable:
                why, reason = "permanent error", "permanent"
            elif claim.attempt >= self.settings.max_attempts:
                why, reason = f"{claim.attempt} attempts", "attempts"
            else:
                why, reason = "its delivery deadline", "deadline"
            log.error("outbox %s: giving up after %s: %s", claim.id, why, error)
            if await self._finish(claim, status=OutboxStatus.FAILED, last_error=error):
                DEAD_LETTERS.labels(reason).inc()

    async def _finish(self, claim: _Claim, **values: Any) -> bool:
        async with self._write_lock, self.db.session() as s:
            return await self._set(s, claim.id, OutboxStatus.SENDING, claim.attempt, **values)


# -- dead letters: deliveries given up, for admins to inspect and retry ----------------------


async def dead_letters(db: Database, limit: int = 100) -> list[Outbox]:
    """Failed deliveries (attempts, deadline or permanent error), newest first."""
    async with db.session() as s:
        rows = (
            await s.exec(
                select(Outbox)
                .where(Outbox.status == OutboxStatus.FAILED)
                .order_by(col(Outbox.id).desc())
                .limit(limit)
            )
        ).all()
    return list(rows)


async def retry_dead_letter(db: Database, outbox_id: int) -> Outbox:
    """Send a failed delivery again from scratch: attempts and its deadline start over."""
    now = utcnow()
    async with db.session() as s:
        result = await s.exec(
            update(Outbox)  # type: ignore[call-overload]
            .where(col(Outbox.id) == outbox_id, col(Outbox.status) == OutboxStatus.FAILED)
            .values(status=OutboxStatus.PENDING, attempts=0, next_try_at=now, created_at=now)
            .execution_options(synchronize_session=False)
        )
        row = await s.get(Outbox, outbox_id)
        if row is None:
            raise NotFoundError("no such delivery")
        if result.rowcount != 1:
            raise ConflictError(f"delivery {outbox_id} is {row.status}, not failed")
        await s.refresh(row)
    return row
