"""Model versions: register trained artifacts and switch the active one atomically.

Kinds are ``intent``, ``generator`` and ``index``. Exactly one version per kind is active;
activation retires the previous one in the same transaction, so a reader sees either the old
or the new active version, never none or two.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlmodel import col, select

from bot.errors import ConflictError, NotFoundError
from bot.storage.db import Database
from bot.storage.models import ModelStatus, ModelVersion, utcnow

KINDS = ("intent", "generator", "index")


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise NotFoundError(f"unknown model kind {kind!r}; expected one of {', '.join(KINDS)}")


async def register_model_version(
    db: Database,
    kind: str,
    version: str,
    path: str | Path,
    metrics: dict[str, Any] | None = None,
    *,
    training_run_id: int | None = None,
) -> ModelVersion:
    """Record a new candidate artifact; a (kind, version) pair can be registered once."""
    _check_kind(kind)
    async with db.session() as s:
        existing = await s.exec(
            select(ModelVersion).where(ModelVersion.kind == kind, ModelVersion.version == version)
        )
        if existing.first() is not None:
            raise ConflictError(f"{kind} version {version!r} is already registered")
        row = ModelVersion(
            kind=kind,
            version=version,
            path=str(Path(path).absolute()),
            metrics=metrics or {},
            training_run_id=training_run_id,
        )
        s.add(row)
    return row


async def activate_model_version(db: Database, kind: str, version: str) -> ModelVersion:
    """Make ``version`` the active one of its kind, retiring the previous active version."""
    _check_kind(kind)
    async with db.session() as s:
        rows = (
            await s.exec(
                select(ModelVersion)
                .where(ModelVersion.kind == kind)
                .where(
                    (ModelVersion.version == version) | (ModelVersion.status == ModelStatus.ACTIVE)
                )
                .with_for_update()
            )
        ).all()
        target = next((r for r in rows if r.version == version), None)
        if target is None:
            raise NotFoundError(f"no {kind} version {version!r}")
        for row in rows:
            if row is not target and row.status == ModelStatus.ACTIVE:
                row.status = ModelStatus.RETIRED
                s.add(row)
        await s.flush()
        target.status = ModelStatus.ACTIVE
        target.activated_at = utcnow()
        s.add(target)
    return target


async def active_model_version(db: Database, kind: str) -> ModelVersion | None:
    _check_kind(kind)
    async with db.session() as s:
        result = await s.exec(
            select(ModelVersion).where(
                ModelVersion.kind == kind, ModelVersion.status == ModelStatus.ACTIVE
            )
        )
        return result.first()


async def list_model_versions(db: Database, kind: str | None = None) -> list[ModelVersion]:
    async with db.session() as s:
        query = select(ModelVersion).order_by(col(ModelVersion.created_at).desc())
        if kind is not None:
            _check_kind(kind)
            query = query.where(ModelVersion.kind == kind)
        return list((await s.exec(query)).all())
