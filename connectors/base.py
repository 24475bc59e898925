"""The one interface every chat platform implements, and the values that cross it.

A :class:`Connector` serves one *channel*: one configured bot account on one platform
("telegram:main", "slack:support"). The webhook app calls, for each request::

    await connector.verify(request, body)       # AuthError -> 401, InputError -> 400
    await connector.handshake(request, body)    # a ready response for challenges, else None
    await connector.parse(request, body)        # -> list[InboundMessage], may be empty
    connector.acknowledge(request)              # the 2xx body the platform expects

and the delivery worker calls ``await connector.send(outbound)`` for each outbox row.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import aiohttp
from aiohttp import web

from connectors.config import ChannelConfig

log = logging.getLogger("deskbot.connectors")


@dataclass(frozen=True)
class InboundMessage:
    """A customer's text message as a platform delivered it.

    ``external_message_id`` is unique per channel and identical when the platform retries
    the same message, so storing it under a unique constraint makes processing idempotent.
    """

    channel: str  # "<connector>:<channel>", the value stored in Conversation.channel
    external_message_id: str
    external_conversation_id: str
    customer_external_id: str
    text: str
    raw: dict[str, Any] = field(default_factory=dict, repr=False)
    customer_name: str | None = None


@dataclass(frozen=True)
class OutboundMessage:
    """A reply to send to one conversation on the channel it came from.

    ``reply_to`` is the ``external_message_id`` of the inbound message being answered (or
    None); each connector decides how to use it (quote, thread, context). ``delivery_id``
    is set by the delivery worker to the outbox row id, an idempotency key where the
    platform accepts one.
    """

    channel: str
    conversation_external_id: str
    text: str
    reply_to: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    delivery_id: int | None = None

    def to_payload(self) -> dict[str, Any]:
        return {
            "channel": self.channel,
            "conversation_external_id": self.conversation_external_id,
            "text": self.text,
            "reply_to": self.reply_to,
            "meta": dict(self.meta),
        }

    @classmethod
    def from_payload(
        cls, payload: dict[str, Any], *, delivery_id: int | None = None
    ) -> OutboundMessage:
        return cls(
            channel=payload["channel"],
            conversation_external_id=payload["conversation_external_id"],
            text=payload["text"],
            reply_to=payload.get("reply_to"),
            meta=dict(payload.get("meta") or {}),
            delivery_id=delivery_id,
        )


@dataclass(frozen=True)
class DeliveryResult:
    """What the platform answered to an accepted send."""

    external_message_id: str | None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)


class Connector(ABC):
    """One channel on one chat platform: verifies, parses and answers its webhooks.

    Subclasses set ``name`` (the route segment, e.g. ``"slack"``) and ``config_class`` (a
    frozen :class:`ChannelConfig` dataclass validated in ``__post_init__``). An instance holds
    one ``aiohttp.ClientSession`` for its outbound calls, opened lazily and closed by
    :meth:`close`.
    """

    name: ClassVar[str]
    config_class: ClassVar[type[ChannelConfig]]
    # Largest webhook body read, whatever the server's own cap: room for the platform's
    # biggest customer message in its JSON; a larger body is answered 413 unread.
    max_body_bytes: ClassVar[int] = 64 * 1024

    def __init__(self, channel: str, config: ChannelConfig) -> None:
        if not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__} needs a {self.config_class.__name__}")
        self.channel = channel
        self.config = config
        self._http: aiohttp.ClientSession | None = None

    @property
    def channel_key(self) -> str:
        """``"<connector>:<channel>"``: the channel as conversations and the outbox store it."""
        return f"{self.name}:{self.channel}"

    @property
    def http(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.config.timeout_s),
                raise_for_status=False,
            )
        return self._http

    async def handshake(self, request: web.Request, body: bytes) -> web.Response | None:
        """Answer a platform challenge (GET verification, URL check); None for ordinary events.

        Called for every GET (before any signature check: such handshakes are unsigned and
        prove themselves with a shared token) and for POSTs after :meth:`verify`.
        """
        return None

    @abstractmethod
    async def verify(self, request: web.Request, body: bytes) -> None:
        """Check the request came from the platform: raise ``AuthError`` if not.

        ``body`` is the raw body exactly as received: signatures are computed over bytes,
        never over re-serialised JSON.
        """

    @abstractmethod
    async def parse(self, request: web.Request, body: bytes) -> list[InboundMessage]:
        """Turn a verified request into customer messages; ``InputError`` when malformed.

        Events that are not customer text (the bot's own messages, edits, delivery receipts)
        give an empty list: the platform still gets its 2xx so it stops retrying.
        """

    def acknowledge(self, request: web.Request) -> web.Response:
        """The 2xx answer once the messages are stored."""
        return web.json_response({"ok": True})

    @abstractmethod
    async def send(self, message: OutboundMessage) -> DeliveryResult:
        """Deliver one message through the platform's send API.

        Raise :class:`~connectors.errors.RetryableDeliveryError` (network error, 5xx, 429,
        with ``retry_after`` when the platform says) or
        :class:`~connectors.errors.PermanentDeliveryError`.
        """

    async def close(self) -> None:
        """Release the outbound HTTP session."""
        if self._http is not None and not self._http.closed:
            await self._http.close()
        self._http = None


def fit_text(text: str, limit: int) -> str:
    """Cut ``text`` to a platform's length limit, marking the cut."""
    if len(text) <= limit:
        return text
    log.warning("reply of %d characters cut to the platform limit of %d", len(text), limit)
    return text[: limit - 1] + "…"
