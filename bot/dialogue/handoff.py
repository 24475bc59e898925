"""After a handoff: business hours, and telling the customer when nobody takes the conversation.

A handed-off conversation that no agent claims within ``handoff.wait_s`` gets one message
saying so, with an offer to leave a message or an email address. Outside business hours the
handoff notice says the team is away at once. Every server process (and ``deskbot worker``)
runs :func:`watch_handoffs`; a row lock on PostgreSQL and SQLite's single writer make sure a
conversation is told once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from bot.errors import SettingsError

log = logging.getLogger("deskbot.handoff")

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, slots=True)
class BusinessHours:
    """Opening hours per weekday (Monday = 0) in one time zone; none at all: always open."""

    spans: tuple[tuple[int, time, time], ...]
    zone: ZoneInfo
    text: str

    @classmethod
    def parse(cls, spec: str, timezone: str = "UTC") -> BusinessHours:
        """``"Mon-Fri 09:00-17:00, Sat 10:00-14:00"``; an empty spec is always open."""
        try:
            zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise SettingsError(f"unknown time zone {timezone!r}") from None
        spans: list[tuple[int, time, time]] = []
        for part in filter(None, (p.strip() for p in spec.split(","))):
            try:
                days, hours = part.split()
                start_s, end_s = hours.split("-")
                start, end = time.fromisoformat(start_s), time.fromisoformat(end_s)
                first, _, last = days.lower().partition("-")
                a = _DAYS.index(first[:3])
                b = _DAYS.index(last[:3]) if last else a
            except ValueError:
                raise SettingsError(
                    f"business hours {part!r}: expected e.g. 'Mon-Fri 09:00-17:00'"
                ) from None
            if end <= start:
                raise SettingsError(f"business hours {part!r}: the end must follow the start")
            day = a
            while True:
                spans.append((day, start, end))
                if day == b:
                    break
                day = (day + 1) % 7
        return cls(tuple(spans), zone, spec.strip())

    def is_open(self, now: datetime) -> bool:
        if not self.spans:
            return True
        local = now.astimezone(self.zone)
        t = local.timetz().replace(tzinfo=None)
        return any(d == local.weekday() and s <= t < e for d, s, e in self.spans)


def due(handoff_at: str | None, now: datetime, wait_s: float) -> bool:
    """Whether a handoff made at ``handoff_at`` (ISO) has waited ``wait_s`` or longer."""
    if not handoff_at:
        return False
    try:
        at = datetime.fromisoformat(handoff_at)
    except ValueError:
        return False
    return now - at >= timedelta(seconds=wait_s)


async def watch_handoffs(
    tell: Callable[[], Awaitable[int]], every_s: float, stopping: Callable[[], bool]
) -> None:
    """Call ``tell`` (which notifies the conversations due) every ``every_s`` seconds."""
    while not stopping():
        try:
            told = await tell()
            if told:
                log.info("told %d customers that nobody has taken their conversation yet", told)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("checking waiting handoffs failed; trying again later")
        await asyncio.sleep(every_s)


__all__ = ["BusinessHours", "due", "watch_handoffs"]
