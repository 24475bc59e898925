"""Credentials: per-conversation widget tokens and agent/admin API keys.

Only SHA-256 hashes are stored. A key is ``dsk_<prefix>_<secret>``; the prefix finds the row and
the hash is compared with ``secrets.compare_digest``.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Literal

from sqlmodel import select

from bot.errors import AuthError, ForbiddenError, InputError
from bot.storage.db import Database
from bot.storage.models import ApiKey, utcnow

Role = Literal["agent", "admin"]
ROLES: tuple[Role, ...] = ("agent", "admin")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: an agent or admin (by API key name)."""

    name: str
    role: Role

    def require(self, role: Role) -> None:
        if role == "admin" and self.role != "admin":
            raise ForbiddenError("this route needs an admin API key")


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_conversation_token() -> tuple[str, str]:
    """A fresh widget token and the hash to store."""
    token = secrets.token_urlsafe(32)
    return token, hash_secret(token)


def token_matches(token: str, stored_hash: str | None) -> bool:
    return stored_hash is not None and secrets.compare_digest(hash_secret(token), stored_hash)


async def create_api_key(db: Database, name: str, role: str) -> str:
    """Create a key; the plain key is returned once and never stored."""
    if role not in ROLES:
        raise InputError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if not name.strip():
        raise InputError("an API key needs a name")
    prefix = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    key = f"dsk_{prefix}_{secret}"
    async with db.session() as s:
        s.add(ApiKey(name=name.strip(), role=role, prefix=prefix, key_hash=hash_secret(key)))
    return key


async def authenticate_key(db: Database, key: str) -> Principal:
    """The principal for an API key; AuthError when it is unknown or revoked."""
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != "dsk":
        raise AuthError("an agent or admin API key is required")
    async with db.session() as s:
        rows = (
            await s.exec(select(ApiKey).where(ApiKey.prefix == parts[1], ApiKey.active == True))  # noqa: E712
        ).all()
        for row in rows:
            if secrets.compare_digest(row.key_hash, hash_secret(key)):
                row.last_used_at = utcnow()
                s.add(row)
                return Principal(name=row.name, role=row.role)  # type: ignore[arg-type]
    raise AuthError("unknown or revoked API key")
