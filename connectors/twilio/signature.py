"""Twilio request validation: base64 HMAC-SHA1 of the URL then each POST param, sorted.

The signed string is the full URL (with its query string) followed by every form parameter
as ``name + value``, sorted by name. Twilio may sign the URL with or without the default
port (``:443``), so both forms are tried, as Twilio's own helpers do.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

from bot.errors import AuthError
from connectors.signing import hmac_sha1_b64, same

SIGNATURE_HEADER = "X-Twilio-Signature"


def twilio_signature(auth_token: str, url: str, params: Iterable[tuple[str, str]]) -> str:
    data = url + "".join(k + v for k, v in sorted(params))
    return hmac_sha1_b64(auth_token, data.encode("utf-8"))


def _url_variants(url: str) -> list[str]:
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme)
    if parts.port is not None:
        if parts.port == default:
            return [url, urlunsplit(parts._replace(netloc=parts.hostname or ""))]
        return [url]
    with_port = parts._replace(netloc=f"{parts.netloc}:{default}") if default else parts
    return [url, urlunsplit(with_port)]


def verify_twilio(
    auth_token: str, url: str, params: list[tuple[str, str]], signature: str | None
) -> None:
    if not signature:
        raise AuthError(f"missing {SIGNATURE_HEADER}")
    for candidate in _url_variants(url):
        if same(twilio_signature(auth_token, candidate, params), signature):
            return
    raise AuthError(f"wrong {SIGNATURE_HEADER}")
