"""Outbound HTTP calls to platform APIs, with failures sorted into retryable and permanent."""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, NoReturn

import aiohttp

from connectors.errors import PermanentDeliveryError, RetryableDeliveryError

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class ApiResponse:
    status: int
    data: Any  # parsed JSON, or the text when the body is not JSON
    headers: dict[str, str]


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


async def call_api(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    platform: str,
    retryable_status: Collection[int] = RETRYABLE_STATUS,
    **kwargs: Any,
) -> ApiResponse:
    """Make one request; return any response, raise only for network failures.

    Callers inspect the response because several platforms (Slack, Telegram) report errors
    inside a 200 or carry the wait in the body; :func:`raise_for_status` covers the rest.
    """
    try:
        async with session.request(method, url, **kwargs) as resp:
            raw = await resp.read()
            try:
                data: Any = json.loads(raw) if raw else {}
            except ValueError:
                data = raw.decode("utf-8", "replace")
            return ApiResponse(resp.status, data, dict(resp.headers))
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        detail = str(exc) or type(exc).__name__
        raise RetryableDeliveryError(f"{platform}: cannot reach the API: {detail}") from exc


def raise_for_status(
    resp: ApiResponse,
    *,
    platform: str,
    detail: str = "",
    retry_after: float | None = None,
    retryable: bool | None = None,
) -> NoReturn:
    """Raise the typed delivery error for a response the caller found unsuccessful.

    ``retryable`` None decides by status: network-ish statuses (429, 5xx) are retryable.
    """
    if retry_after is None:
        retry_after = parse_retry_after(resp.headers.get("Retry-After"))
    message = f"{platform}: HTTP {resp.status}" + (f": {detail}" if detail else "")
    if retryable is None:
        retryable = resp.status in RETRYABLE_STATUS
    cls = RetryableDeliveryError if retryable else PermanentDeliveryError
    raise cls(message, status=resp.status, retry_after=retry_after)


def short(data: Any, limit: int = 300) -> str:
    text = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)
    return text[:limit]
