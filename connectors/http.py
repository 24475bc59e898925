"""The webhook sub-application: ``POST|GET /webhooks/{connector}/{channel}``.

For each POST: look up the channel, read the raw body up to the connector's
``max_body_bytes`` (413 past it), verify the signature over it, answer a handshake if it is
one, parse, hand every message to ``on_inbound`` and answer 2xx. The server's
``on_inbound`` stores the message idempotently (returning whether it was new) and
starts the reply pipeline in a tracked background task, so the platform gets its answer
fast. A bad signature is 401 and ``on_inbound`` is never called; a malformed body is 400;
when ``on_inbound`` fails the answer is 500 so the platform retries later.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from bot.errors import DeskbotError, PayloadTooLargeError
from connectors.base import Connector, InboundMessage
from connectors.connector_set import ConnectorSet

log = logging.getLogger("deskbot.connectors")

OnInbound = Callable[[Connector, InboundMessage], Awaitable[bool]]
"""Store the message (idempotent on its external id); True when it was new."""

CONNECTORS_KEY = web.AppKey("deskbot_connectors", ConnectorSet)
ON_INBOUND_KEY = web.AppKey("deskbot_on_inbound", object)


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


@web.middleware
async def _errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except DeskbotError as exc:
        if exc.status >= 500:
            log.error("webhook %s failed: %s", request.path, exc.message)
        else:
            log.info("webhook %s refused (%d): %s", request.path, exc.status, exc.message)
        return web.json_response(exc.to_dict(), status=exc.status)
    except web.HTTPException as exc:
        if exc.status >= 400:
            return _error(exc.status, "http_error", exc.reason)
        raise
    except Exception:
        log.exception("webhook %s failed", request.path)
        return _error(500, "internal", "internal error; the platform may retry")


async def _post(request: web.Request) -> web.StreamResponse:
    connector = request.app[CONNECTORS_KEY].get(
        request.match_info["connector"], request.match_info["channel"]
    )
    body = await read_body(request, connector.max_body_bytes)
    await connector.verify(request, body)
    challenge = await connector.handshake(request, body)
    if challenge is not None:
        return challenge
    messages = await connector.parse(request, body)
    on_inbound: OnInbound = request.app[ON_INBOUND_KEY]  # type: ignore[assignment]
    for message in messages:
        new = await on_inbound(connector, message)
        if not new:
            log.info(
                "%s: message %s already stored (platform retry)",
                connector.channel_key,
                message.external_message_id,
            )
    return connector.acknowledge(request)


async def read_body(request: web.Request, limit: int) -> bytes:
    """The raw body, refused once it is known to pass ``limit`` bytes, before reading more.

    It is read from the stream, so the server's own ``client_max_size`` does not apply.
    """
    if request.content_length is not None and request.content_length > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> PayloadTooLargeError:
    return PayloadTooLargeError(f"webhook body over this platform's limit of {limit} bytes")


async def _get(request: web.Request) -> web.StreamResponse:
    connector = request.app[CONNECTORS_KEY].get(
        request.match_info["connector"], request.match_info["channel"]
    )
    answer = await connector.handshake(request, b"")
    if answer is None:
        return _error(405, "method_not_allowed", f"{connector.name} webhooks are POST only")
    return answer


def make_webhook_app(connectors: ConnectorSet, on_inbound: OnInbound) -> web.Application:
    """A sub-application to mount with ``app.add_subapp("/webhooks", ...)``.

    Its routes are ``/{connector}/{channel}`` so the mounted paths are
    ``/webhooks/{connector}/{channel}``. The caller owns the connectors' lifetime
    (``await connectors.close()`` at shutdown).
    """
    app = web.Application(middlewares=[_errors])
    app[CONNECTORS_KEY] = connectors
    app[ON_INBOUND_KEY] = on_inbound
    app.router.add_post("/{connector}/{channel}", _post)
    app.router.add_get("/{connector}/{channel}", _get)
    return app
