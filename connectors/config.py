"""Typed per-channel options: one frozen dataclass per connector, validated on creation.

Settings hold channels as ``[connectors.channels.<name>]`` tables with a ``connector`` key and
the connector's own options; :meth:`ChannelConfig.from_options` turns such a table into the
connector's dataclass, coercing strings from the environment and naming any bad option.
:class:`DeliverySettings` is the ``[delivery]`` section: how the outbox worker retries.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from connectors.errors import ChannelConfigError

# A shared secret shorter than this can be guessed online; several platforms (Telegram's
# secret_token) authenticate webhooks with nothing else.
MIN_SECRET_CHARS = 16

# A channel's name is the last segment of its webhook path, /webhooks/<connector>/<channel>.
CHANNEL_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")


def channel_name_problem(name: str) -> str | None:
    """What is wrong with ``name`` as a channel name, or None when it fits."""
    if CHANNEL_NAME.fullmatch(name):
        return None
    return f"channel name {name!r} must be 1-32 of a-z, 0-9, _ and -"


def secret(default: str | None = None) -> Any:
    """A secret option: hidden from repr and masked when settings are shown."""
    if default is None:
        return dataclasses.field(repr=False, metadata={"secret": True})
    return dataclasses.field(default=default, repr=False, metadata={"secret": True})


def require(option: str, value: str) -> None:
    if not value or not value.strip():
        raise ChannelConfigError(option, "must not be empty")


def check_url(option: str, value: str, *, allow_empty: bool = False) -> None:
    if allow_empty and not value:
        return
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ChannelConfigError(option, f"expected an http(s) URL, got {value!r}")


@dataclass(frozen=True, kw_only=True)
class ChannelConfig:
    """Options every connector shares."""

    # Total time for one call to the platform's API; the delivery worker's lease must be
    # longer, so that a slow send is never taken over by another worker.
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if not self.timeout_s > 0:
            raise ChannelConfigError("timeout_s", f"must be > 0, got {self.timeout_s!r}")
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            # An optional secret left empty means "unused" or "same as another"; its
            # connector's own checks decide whether empty is allowed.
            if f.metadata.get("secret") and value and len(value) < MIN_SECRET_CHARS:
                raise ChannelConfigError(
                    f.name, f"is {len(value)} characters; use at least {MIN_SECRET_CHARS}"
                )

    @classmethod
    def secret_options(cls) -> frozenset[str]:
        return frozenset(f.name for f in dataclasses.fields(cls) if f.metadata.get("secret"))

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Self:
        """Build from a settings table; raise :class:`ChannelConfigError` naming the option."""
        fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
        hints = typing.get_type_hints(cls)
        values: dict[str, Any] = {}
        for key, raw in options.items():
            if key not in fields:
                raise ChannelConfigError(
                    key, f"unknown option; expected one of {', '.join(sorted(fields))}"
                )
            values[key] = _coerce(key, raw, hints[key])
        for name, f in fields.items():
            missing = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            if missing and name not in values:
                raise ChannelConfigError(name, "is required")
        return cls(**values)


def _coerce(option: str, value: Any, hint: Any) -> Any:
    """Values from the environment arrive as strings; turn them into the declared type."""
    if hasattr(value, "get_secret_value"):
        value = value.get_secret_value()
    try:
        if hint is bool:
            if isinstance(value, str):
                lowered = value.strip().lower()
                if lowered in ("1", "true", "yes", "on"):
                    return True
                if lowered in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            if not isinstance(value, bool):
                raise ValueError(value)
            return value
        if hint in (int, float):
            if isinstance(value, bool):
                raise ValueError(value)
            return hint(value)
        if hint is str:
            if not isinstance(value, str | int):
                raise ValueError(value)
            return str(value)
        if typing.get_origin(hint) is tuple:
            items = value.split(",") if isinstance(value, str) else list(value)
            return tuple(str(i).strip() for i in items if str(i).strip())
    except (TypeError, ValueError):
        name = getattr(hint, "__name__", str(hint))
        raise ChannelConfigError(option, f"expected {name}, got {value!r}") from None
    return value


class DeliverySettings(BaseModel):
    """How :class:`~connectors.outbox.DeliveryWorker` claims, retries and gives up."""

    model_config = ConfigDict(extra="forbid", validate_default=True)

    max_attempts: int = Field(8, ge=1)
    backoff_base_s: float = Field(1.0, gt=0)
    backoff_max_s: float = Field(300.0, gt=0)
    # A claimed row is the worker's for this long; a send is cut off at half of it, so a
    # live worker always finishes first and a crashed one's rows are retried after it.
    lease_s: float = Field(60.0, gt=0)
    poll_interval_s: float = Field(1.0, gt=0)
    batch_size: int = Field(50, ge=1)
    # A platform's Retry-After is believed up to this many seconds.
    retry_after_max_s: float = Field(3600.0, gt=0)
    # A delivery not sent this long after it was queued goes to the dead letters (status
    # "failed"), listed for admins at /api/v1/admin/outbox with a retry action.
    deadline_s: float = Field(86400.0, gt=0)
