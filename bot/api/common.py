"""What every route shares: JSON errors, body parsing, authentication, rate limits, CORS."""

from __future__ import annotations

import functools
import ipaddress
import json
import logging
import math
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar, overload

from aiohttp import web

from bot.api.tickets import principal_for_ticket, redeem_ticket
from bot.auth import Principal, Role, authenticate_key, token_matches
from bot.errors import (
    AuthError,
    DeskbotError,
    ForbiddenError,
    InputError,
    NotFoundError,
    RateLimitedError,
)
from bot.storage.models import Conversation

log = logging.getLogger("deskbot.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
T = TypeVar("T")

SERVICES = web.AppKey("services", object)
STREAM_OWNER = web.RequestKey("stream_owner", str)  # who an event stream counts against


def services(request: web.Request) -> Any:
    return request.app[SERVICES]


def error_response(status: int, code: str, message: str, **headers: str) -> web.Response:
    return web.json_response(
        {"error": {"code": code, "message": message}}, status=status, headers=headers or None
    )


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure becomes ``{"error": {"code", "message"}}``; never a stack trace."""
    try:
        return await handler(request)
    except RateLimitedError as exc:
        retry = str(max(1, math.ceil(exc.retry_after)))
        return web.json_response(exc.to_dict(), status=exc.status, headers={"Retry-After": retry})
    except DeskbotError as exc:
        return web.json_response(exc.to_dict(), status=exc.status)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/json":
            raise
        code = exc.reason.lower().replace(" ", "_")
        return error_response(
            exc.status,
            code,
            exc.reason,
            **{k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")},
        )
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "internal server error")


def cors_middleware(origins: list[str]) -> Callable[..., Awaitable[web.StreamResponse]]:
    """CORS for the configured widget origins only, on the public widget routes."""
    allowed = set(origins)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        ok = origin is not None and (origin in allowed or "*" in allowed)
        public = request.path.startswith(("/api/v1/conversations", "/api/v1/messages"))
        if request.method == "OPTIONS" and public and origin is not None:
            if not ok:
                return error_response(403, "forbidden", f"origin {origin} is not allowed")
            response: web.StreamResponse = web.Response(status=204)
        else:
            response = await handler(request)
        if ok and public and origin is not None:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Vary"] = "Origin"
            response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
            response.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
        return response

    return middleware


async def json_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object; InputError (400) for anything else."""
    raw = await request.read()
    if not raw:
        raise InputError("the request needs a JSON body")
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"invalid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InputError("the JSON body must be an object")
    return body


def field(
    body: dict[str, Any], name: str, kind: type[T] | tuple[type, ...], *, required: bool = True
) -> Any:
    value = body.get(name)
    if value is None:
        if required:
            raise InputError(f"field {name!r} is required")
        return None
    if isinstance(value, bool) and kind is not bool:
        raise InputError(f"field {name!r} must be {_kind_name(kind)}")
    if not isinstance(value, kind):
        raise InputError(f"field {name!r} must be {_kind_name(kind)}")
    return value


def _kind_name(kind: Any) -> str:
    names = {
        str: "a string",
        int: "an integer",
        dict: "an object",
        list: "a list",
        bool: "a boolean",
    }
    if isinstance(kind, tuple):
        return " or ".join(names.get(k, k.__name__) for k in kind)
    return names.get(kind, kind.__name__)


@overload
def text_field(
    body: dict[str, Any], name: str, limit: int, *, required: Literal[True] = True
) -> str: ...
@overload
def text_field(body: dict[str, Any], name: str, limit: int, *, required: bool) -> str | None: ...
def text_field(body: dict[str, Any], name: str, limit: int, *, required: bool = True) -> str | None:
    value = field(body, name, str, required=required)
    if value is None:
        return None
    if not value.strip():
        raise InputError(f"field {name!r} must not be empty")
    if len(value) > limit:
        raise InputError(f"field {name!r} is {len(value)} characters; the limit is {limit}")
    return value


def path_int(request: web.Request, name: str) -> int:
    try:
        value = int(request.match_info[name])
    except ValueError:
        raise NotFoundError(f"no such {name.removesuffix('_id')}") from None
    if value < 1 or value > 2**62:
        raise NotFoundError(f"no such {name.removesuffix('_id')}")
    return value


def bearer(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    raise AuthError("missing Authorization: Bearer credentials")


def _stream_ticket(request: web.Request, query_param: str | None) -> str | None:
    """The ``?ticket=`` of an event stream; a credential in ``?<query_param>=`` is refused."""
    if query_param is None or "Authorization" in request.headers:
        return None
    if request.query.get(query_param):
        raise AuthError(
            f"credentials in ?{query_param}= are not accepted; POST for a stream ticket and "
            "open the stream with ?ticket="
        )
    return request.query.get("ticket") or None


def token_expired(conv: Conversation, idle_days: float) -> bool:
    """Whether a widget token has lapsed: no activity in its conversation for ``idle_days``."""
    last = conv.updated_at or conv.created_at
    if last is None:
        return False
    if last.tzinfo is None:
        last = last.replace(tzinfo=UTC)
    return datetime.now(UTC) - last > timedelta(days=idle_days)


async def conversation_for_token(
    request: web.Request, conversation_id: int, *, query_param: str | None = None
) -> Conversation:
    """The conversation the widget token opens; another conversation's id is a 404.

    With ``query_param`` (event streams) a single-use ``?ticket=`` may stand in for the token.
    """
    svc = services(request)
    ticket = _stream_ticket(request, query_param)
    if ticket is not None:
        row = await redeem_ticket(svc.db, ticket)
        if row.conversation_id != conversation_id:
            raise NotFoundError("no such conversation")
        async with svc.db.session() as s:
            conv = await s.get(Conversation, conversation_id)
        if conv is None:
            raise NotFoundError("no such conversation")
    else:
        token = bearer(request)
        async with svc.db.session() as s:
            conv = await s.get(Conversation, conversation_id)
        if conv is None or not token_matches(token, conv.token_hash):
            raise NotFoundError("no such conversation")
    if token_expired(conv, svc.settings.server.conversation_idle_days):
        raise AuthError("this conversation's token has expired; start a new conversation")
    request[STREAM_OWNER] = f"conversation:{conversation_id}"
    return conv


async def principal(
    request: web.Request, role: Role = "agent", *, query_param: str | None = None
) -> Principal:
    """The agent or admin calling; widget tokens and bad keys are refused.

    With ``query_param`` (event streams) a single-use ``?ticket=`` may stand in for the key.
    """
    db = services(request).db
    ticket = _stream_ticket(request, query_param)
    if ticket is not None:
        who = await principal_for_ticket(db, await redeem_ticket(db, ticket))
    else:
        key = bearer(request)
        if not key.startswith("dsk_"):
            raise ForbiddenError(
                "this route needs an agent or admin API key, not a conversation token"
            )
        who = await authenticate_key(db, key)
    who.require(role)
    request[STREAM_OWNER] = f"key:{who.name}"
    return who


async def rate_limit(request: web.Request, key: str, rate: float, burst: int) -> None:
    wait = await services(request).limiter.hit(key, rate, burst)
    if wait > 0:
        raise RateLimitedError("too many requests; slow down", retry_after=wait)


def _trusted(networks: tuple[Any, ...], address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return False
    return any(ip in net for net in networks)


@functools.lru_cache(maxsize=8)
def _networks(proxies: tuple[str, ...]) -> tuple[Any, ...]:
    return tuple(ipaddress.ip_network(p, strict=False) for p in proxies)


def client_ip(request: web.Request) -> str:
    """The client's address: X-Forwarded-For counts only when a trusted proxy sent it.

    The header is read from the right, skipping trusted proxies; the first other address is
    the client (anything left of it was written by the client and proves nothing).
    """
    remote = request.remote or "unknown"
    proxies = tuple(services(request).settings.server.trusted_proxies)
    if not proxies:
        return remote
    networks = _networks(proxies)
    if not _trusted(networks, remote):
        return remote
    hops = [h.strip() for h in ",".join(request.headers.getall("X-Forwarded-For", [])).split(",")]
    for hop in reversed([h for h in hops if h][-64:]):  # the rightmost hops are the proxies
        if not _trusted(networks, hop):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return remote  # a malformed hop: trust nothing further left
    return remote
