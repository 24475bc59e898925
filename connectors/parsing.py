"""Body decoding shared by the platforms' parsers; malformed input is an ``InputError``."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from bot.errors import InputError


def json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise InputError(f"body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise InputError("body is not a JSON object")
    return data


def form_pairs(body: bytes) -> list[tuple[str, str]]:
    """``application/x-www-form-urlencoded`` pairs in order, repeated keys kept."""
    try:
        return parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"body is not form-encoded: {exc}") from None


def field(data: dict[str, Any], path: str, kind: type = str) -> Any:
    """``data["a"]["b"]`` for ``path="a.b"``, checked against ``kind``; names the path if not."""
    value: Any = data
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            raise InputError(f"payload has no {path!r}")
        value = value[part]
    if kind is str and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, kind):
        raise InputError(f"payload field {path!r} should be {kind.__name__}")
    return value
