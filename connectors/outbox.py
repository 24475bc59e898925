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

The table itself is the server's: the worker reaches it through :class:`OutboxStore`
(``bot/storage/deliveries.py`` implements it, with the enqueueing the reply path does and
the dead letters admins retry).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from bot.errors import NotFoundError
from connectors.base import DeliveryResult, OutboundMessage
from connectors.config import DeliverySettings
from connectors.connector_set import ConnectorSet
from connectors.errors import DeliveryError

log = logging.getLogger("deskbot.connectors.outbox")


class DeliveryStatus(enum.StrEnum):
    """Where a delivery stands; the ``status`` column of the outbox table."""

    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


@dataclass(frozen=True)
class DueDelivery:
    """An outbox row that is due, as the store read it; ``created_at`` is timezone-aware."""

    id: int
    status: str
    attempts: int
    channel: str
    payload: dict[str, Any]
    created_at: datetime
    last_error: str | None


class OutboxTransaction(Protocol):
    async def due(self, now: datetime, limit: int) -> list[DueDelivery]:
        """Rows ``pending`` or ``sending`` with ``next_try_at <= now``, oldest due first, none
        behind an unsent older row of its conversation; locked where the database can."""
        ...

    async def update(
        self, delivery_id: int, seen_status: str, seen_attempts: int, **values: Any
    ) -> bool:
        """Set ``values`` (``status``, ``attempts``, ``next_try_at``, ``last_error``,
        ``sent_at``, ``payload``) only if the row still has the status and attempts seen;
        whether it did. This is the claim and confirm guard."""
        ...


class OutboxStore(Protocol):
    """The outbox table, one transaction at a time."""

    def transaction(self) -> contextlib.AbstractAsyncContextManager[OutboxTransaction]: ...


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


def _now() -> datetime:
    return datetime.now(UTC)


class DeliveryWorker:
    """Sends outbox rows until stopped; one per process, any number per database.

    The server owns its lifetime: ``await worker.start()`` at start-up, ``worker.wake()``
    after committing an enqueue, ``await worker.stop()`` at shutdown (in-flight sends finish;
    rows cut off are retried after their lease by whichever worker runs next).
    """

    def __init__(
        self,
        store: OutboxStore,
        connectors: ConnectorSet,
        settings: DeliverySettings,
        *,
        rng: random.Random | None = None,
        on_dead_letter: Callable[[str], None] | None = None,
    ) -> None:
        """``on_dead_letter`` hears why each delivery was given up: ``attempts``,
        ``deadline`` or ``permanent`` (the server counts them in /metrics)."""
        self.store = store
        self.connectors = connectors
        self.settings = settings
        self._rng = rng or random.Random()
        self._on_dead_letter = on_dead_letter or (lambda reason: None)
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

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
        now = _now()
        lease_until = now + timedelta(seconds=self.settings.lease_s)
        claims: list[_Claim] = []
        async with self.store.transaction() as tx:
            for row in await tx.due(now, self.settings.batch_size):
                if row.status == DeliveryStatus.SENDING:
                    log.warning(
                        "outbox %s: lease expired on attempt %d, taking over", row.id, row.attempts
                    )
                deadline = row.created_at + timedelta(seconds=self.settings.deadline_s)
                if row.attempts >= self.settings.max_attempts or deadline <= now:
                    reason = (
                        "attempts" if row.attempts >= self.settings.max_attempts else "deadline"
                    )
                    error = (
                        row.last_error or "lease expired on the last attempt"
                        if reason == "attempts"
                        else f"past its delivery deadline ({row.last_error or 'never sent'})"
                    )
                    if await tx.update(
                        row.id,
                        row.status,
                        row.attempts,
                        status=DeliveryStatus.FAILED,
                        last_error=error,
                    ):
                        self._on_dead_letter(reason)
                    continue
                taken = await tx.update(
                    row.id,
                    row.status,
                    row.attempts,
                    status=DeliveryStatus.SENDING,
                    attempts=row.attempts + 1,
                    next_try_at=lease_until,
                )
                if taken:
                    claims.append(
                        _Claim(row.id, row.attempts + 1, row.channel, dict(row.payload), deadline)
                    )
        return claims

    async def _deliver(self, claim: _Claim) -> None:
        try:
            connector = self.connectors.by_key(claim.channel)
        except NotFoundError as exc:
            await self._finish(claim, status=DeliveryStatus.FAILED, last_error=exc.message)
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
            claim, status=DeliveryStatus.SENT, sent_at=_now(), payload=payload, last_error=None
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
        next_try = _now() + timedelta(seconds=delay)
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
                status=DeliveryStatus.PENDING,
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
            if await self._finish(claim, status=DeliveryStatus.FAILED, last_error=error):
                self._on_dead_letter(reason)

    async def _finish(self, claim: _Claim, **values: Any) -> bool:
        async with self.store.transaction() as tx:
            return await tx.update(claim.id, DeliveryStatus.SENDING, claim.attempt, **values)
