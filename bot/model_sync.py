"""Keeping every process on the active model versions: activate, announce, follow, poll.

The database marks one version per kind active (``bot/storage/model_versions.py``). Whoever changes
that here swaps this process's models (:meth:`ModelRuntime.reload`) and announces
``activated`` on the bus; every server follows the announcements and also polls the database,
in case it missed one (Redis down, or several processes without Redis). This module is the
only one that publishes or reads ``activated``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from bot.events import CLOSED, MODELS, Event, EventBus
from bot.jobs import RELOADS
from bot.privacy import PAIRS_ERASED, forget_pairs
from bot.storage.db import Database
from bot.storage.model_versions import activate_model_version, active_model_version
from bot.storage.models import ModelVersion, TrainingRun

if TYPE_CHECKING:  # the runtime loads torch; the worker and the CLI never need it
    from bot.runtime import ModelRuntime

log = logging.getLogger("deskbot.models")

ACTIVATED = "activated"
POLLED = ("index", "intent")  # a generator swaps on announcements and at start-up only


async def activate(
    db: Database,
    bus: EventBus | None,
    kind: str,
    version: str,
    *,
    runtime: ModelRuntime | None = None,
) -> ModelVersion:
    """Make ``version`` the active ``kind``: in the database, in this process, in the others.

    Without a bus (the CLI) running servers pick it up when they next poll.
    """
    row = await activate_model_version(db, kind, version)
    if runtime is not None:
        await runtime.reload([kind])
    if bus is not None:
        await announce(db, bus, [kind])
    return row


async def announce(db: Database, bus: EventBus, kinds: Sequence[str]) -> None:
    """Tell every process that the active versions of ``kinds`` may have changed."""
    for kind in kinds:
        row = await active_model_version(db, kind)
        version = row.version if row is not None else None
        await bus.publish(MODELS, Event(ACTIVATED, {"kind": kind, "version": version}))


def after_jobs(
    db: Database, bus: EventBus | None, runtime: ModelRuntime | None = None
) -> Callable[[TrainingRun], Awaitable[None]]:
    """A job runner's ``on_finished``: swap to and announce what a succeeded job may have
    activated (``bot.jobs.RELOADS``)."""

    async def finished(run: TrainingRun) -> None:
        kinds = RELOADS.get(run.kind, ())
        if run.status != "succeeded" or not kinds:
            return
        if runtime is not None:
            await runtime.reload(kinds)
        if bus is not None:
            await announce(db, bus, kinds)

    return finished


async def follow(runtime: ModelRuntime, bus: EventBus) -> None:
    """Swap to what other processes announce, until the bus closes.

    Erased knowledge pairs come on the same topic (``bot/privacy.py``): the live index stops
    returning them here too.
    """
    async with bus.subscribe(MODELS) as events:
        async for event in events:
            if event.type == CLOSED:
                return
            try:
                if event.type == ACTIVATED:
                    await runtime.reload([event.data["kind"]])
                elif event.type == PAIRS_ERASED:
                    await forget_pairs(runtime, event.data.get("pair_ids"))
            except Exception:  # one bad swap must not stop this process following
                log.exception("following %s %s failed", event.type, event.data)


async def poll(runtime: ModelRuntime, every_s: float) -> None:
    """Reload index and intent when their active versions in the database change.

    Catches a process up on activations whose announcement it missed; a reload that finds
    nothing changed loads nothing.
    """
    while True:
        await asyncio.sleep(every_s)
        try:
            changed = [
                kind
                for kind in POLLED
                if not (kind == "intent" and runtime.settings.intent.model)  # a file, not the DB
                and (row := await active_model_version(runtime.db, kind)) is not None
                and row.version != runtime.models.versions.get(kind)
            ]
            if changed:
                log.info("active %s changed in the database; reloading", ", ".join(changed))
                await runtime.reload(changed)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("polling the active model versions failed")
