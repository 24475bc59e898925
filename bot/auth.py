"""Credentials: per-conversation widget tokens and agent/admin API keys.

Only SHA-256 hashes are stored. A key is ``dsk_<prefix>_<secret>``; the prefix finds the row and
the hash is compared with ``secrets.compare_digest``.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlmodel import col, select

from bot.errors import AuthError, ConflictError, ForbiddenError, InputError, NotFoundError
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


async def create_api_key(
    db: Database, name: str, role: str, *, expires_at: datetime | None = None
) -> str:
    """Create a key; the plain key is returned once and never stored."""
    if role not in ROLES:
        raise InputError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if not name.strip():
        raise InputError("an API key needs a name")
    if len(name.strip()) > 128:
        raise InputError("an API key's name must be at most 128 characters")
    if expires_at is not None:
        if expires_at.tzinfo is None:
            raise InputError("the expiry needs a time zone")
        if expires_at <= utcnow():
            raise InputError("the expiry must be in the future")
    prefix = secrets.token_hex(4)
    secret = secrets.token_urlsafe(32)
    key = f"dsk_{prefix}_{secret}"
    async with db.session() as s:
        s.add(
            ApiKey(
                name=name.strip(),
                role=role,
                prefix=prefix,
                key_hash=hash_secret(key),
                expires_at=expires_at,
            )
        )
    return key


def api_key_json(row: ApiKey) -> dict[str, Any]:
    """What may be shown about a key: never its hash."""

    def iso(moment: datetime | None) -> str | None:
        return moment.isoformat() if moment is not None else None

    return {
        "id": row.id,
        "name": row.name,
        "role": row.role,
        "prefix": row.prefix,
        "status": key_status(row),
        "created_at": iso(row.created_at),
        "last_used_at": iso(row.last_used_at),
        "expires_at": iso(row.expires_at),
        "revoked_at": iso(row.revoked_at),
    }


def key_status(row: ApiKey, now: datetime | None = None) -> str:
    if not row.active:
        return "revoked"
    if row.expires_at is not None and _aware(row.expires_at) <= (now or utcnow()):
        return "expired"
    return "active"


def _aware(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; every stored time is UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


async def list_api_keys(db: Database) -> list[ApiKey]:
    async with db.session() as s:
        return list((await s.exec(select(ApiKey).order_by(col(ApiKey.id)))).all())


async def revoke_api_key(db: Database, ref: str | int, *, keep_an_admin: bool = False) -> ApiKey:
    """Revoke a key by id or prefix; it is refused from the next request on, on every process
    (keys are checked against the database on each request, never cached).

    ``keep_an_admin`` refuses to revoke the last active admin key (the API's guard against
    locking every admin out; the CLI can always create a new one).
    """
    ref = str(ref).strip()
    async with db.session() as s:
        if ref.isdigit():
            row = await s.get(ApiKey, int(ref), with_for_update=True)
        else:
            rows = (await s.exec(select(ApiKey).where(ApiKey.prefix == ref))).all()
            if len(rows) > 1:
                raise ConflictError(f"several keys have the prefix {ref!r}; revoke by id")
            row = rows[0] if rows else None
        if row is None:
            raise NotFoundError(f"no API key with id or prefix {ref!r}")
        if not row.active:
            return row
        if keep_an_admin and row.role == "admin":
            now = utcnow()
            others = [
                k
                for k in (
                    await s.exec(
                        select(ApiKey).where(
                            ApiKey.role == "admin",
                            ApiKey.active == True,  # noqa: E712
                            col(ApiKey.id) != row.id,
                        )
                    )
                ).all()
                if key_status(k, now) == "active"
            ]
            if not others:
                raise ConflictError(
                    "this is the last active admin key; create another first "
                    "(`deskbot apikey create --role admin`)"
                )
        row.active = False
        row.revoked_at = utcnow()
        s.add(row)
    return row


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
                if key_status(row) == "expired":
                    raise AuthError("this API key has expired")
                row.last_used_at = utcnow()
                s.add(row)
                return Principal(name=row.name, role=row.role)  # type: ignore[arg-type]
    raise AuthError("unknown or revoked API key")
