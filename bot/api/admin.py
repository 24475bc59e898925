"""Admin routes: model versions, training runs, imports, metrics, messages to label."""

from __future__ import annotations

import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader, web
from sqlmodel import col, select

from bot import model_sync, privacy
from bot.api.common import field, json_body, path_int, principal, services
from bot.auth import api_key_json, create_api_key, list_api_keys, revoke_api_key
from bot.errors import InputError, NotFoundError
from bot.jobs import JOB_KINDS, check_job_params, enqueue, request_cancel, upload_dir
from bot.metrics import summary
from bot.serialize import message_json, model_json, run_json
from bot.storage.model_versions import KINDS, list_model_versions
from bot.storage.models import Message, ModelVersion, Role, TrainingRun, utcnow

routes = web.RouteTableDef()
MAX_UPLOAD = 512 * 1024 * 1024
UPLOAD_SUFFIXES = (".csv", ".csv.gz", ".jsonl", ".jsonl.gz", ".ndjson", ".tsv")


async def _admin(request: web.Request) -> None:
    await principal(request, "admin")


@routes.get("/api/v1/admin/models")
async def models(request: web.Request) -> web.Response:
    await _admin(request)
    kind = request.query.get("kind")
    if kind is not None and kind not in KINDS:
        raise InputError(f"'kind' must be one of {', '.join(KINDS)}")
    rows = await list_model_versions(services(request).db, kind)
    return web.json_response({"models": [model_json(m) for m in rows]})


@routes.post("/api/v1/admin/models/{kind}/{version}/activate")
async def activate(request: web.Request) -> web.Response:
    """Activate (or roll back to) a version; every process swaps to it without a restart."""
    await _admin(request)
    svc = services(request)
    kind, version = request.match_info["kind"], request.match_info["version"]
    row = await model_sync.activate(svc.db, svc.bus, kind, version, runtime=svc.runtime)
    return web.json_response(model_json(row))


@routes.get("/api/v1/admin/models/intent/{version}/confusion.png")
async def confusion(request: web.Request) -> web.StreamResponse:
    await _admin(request)
    version = request.match_info["version"]
    async with services(request).db.session() as s:
        row = (
            await s.exec(
                select(ModelVersion).where(
                    ModelVersion.kind == "intent", ModelVersion.version == version
                )
            )
        ).first()
    if row is None:
        raise NotFoundError("no such intent model")
    for name in ("confusion.png", "confusion_matrix.png"):
        path = Path(row.path) / name
        if path.is_file():
            return web.FileResponse(path, headers={"Content-Type": "image/png"})
    raise NotFoundError("this model has no confusion matrix; run `deskbot eval intent` on it")


@routes.post("/api/v1/admin/training-runs")
async def start_run(request: web.Request) -> web.Response:
    await _admin(request)
    svc = services(request)
    body = await json_body(request)
    kind = field(body, "kind", str)
    if kind not in JOB_KINDS or kind == "import":
        raise InputError(
            f"'kind' must be one of {', '.join(k for k in JOB_KINDS if k != 'import')}"
        )
    params = field(body, "params", dict, required=False) or {}
    params = check_job_params(kind, params, svc.settings.home)
    run = await enqueue(svc.db, kind, params)
    svc.jobs.wake()
    return web.json_response(run_json(run), status=202)


@routes.post("/api/v1/admin/export")
async def export_training_data(request: web.Request) -> web.Response:
    """Export scrubbed training data from the logs as a job (``deskbot export training-data``).

    Body: ``{"since": "YYYY-MM-DD"}`` (default: everything).
    """
    from bot.export import parse_since

    await _admin(request)
    svc = services(request)
    body = await json_body(request) if (await request.read()).strip() else {}
    since = field(body, "since", str, required=False) or "1970-01-01"
    parse_since(since)
    run = await enqueue(svc.db, "export", {"since": since})
    svc.jobs.wake()
    return web.json_response(run_json(run), status=202)


@routes.get("/api/v1/admin/training-runs")
async def list_runs(request: web.Request) -> web.Response:
    await _admin(request)
    async with services(request).db.session() as s:
        rows = (
            await s.exec(select(TrainingRun).order_by(col(TrainingRun.id).desc()).limit(100))
        ).all()
    return web.json_response({"runs": [run_json(r) for r in rows]})


@routes.get("/api/v1/admin/training-runs/{run_id}")
async def get_run(request: web.Request) -> web.Response:
    await _admin(request)
    async with services(request).db.session() as s:
        run = await s.get(TrainingRun, path_int(request, "run_id"))
    if run is None:
        raise NotFoundError("no such training run")
    return web.json_response(run_json(run))


@routes.post("/api/v1/admin/training-runs/{run_id}/cancel")
async def cancel_run(request: web.Request) -> web.Response:
    await _admin(request)
    run = await request_cancel(services(request).db, path_int(request, "run_id"))
    return web.json_response(run_json(run))


@routes.post("/api/v1/admin/import")
async def import_upload(request: web.Request) -> web.Response:
    """Upload a CSV/JSONL file (multipart field ``file``) and import it as a job."""
    await _admin(request)
    svc = services(request)
    if not request.content_type.startswith("multipart/"):
        raise InputError("send the file as multipart/form-data in a field named 'file'")
    reader = await request.multipart()
    part = await reader.next()
    while part is not None and getattr(part, "name", None) != "file":
        part = await reader.next()
    if not isinstance(part, BodyPartReader) or not part.filename:
        raise InputError("no 'file' field in the upload")
    name = Path(part.filename).name
    if not name.lower().endswith(UPLOAD_SUFFIXES):
        raise InputError(f"{name}: expected a .csv or .jsonl file (optionally .gz)")
    target = upload_dir(svc.settings) / f"{uuid.uuid4().hex[:8]}-{name}"
    size = 0
    with target.open("wb") as out:
        while chunk := await part.read_chunk():
            size += len(chunk)
            if size > MAX_UPLOAD:
                out.close()
                target.unlink(missing_ok=True)
                raise InputError(f"the upload is larger than {MAX_UPLOAD // 2**20} MiB")
            out.write(chunk)
    if size == 0:
        target.unlink(missing_ok=True)
        raise InputError(f"{name} is empty")
    run = await enqueue(svc.db, "import", {"path": str(target.absolute()), "filename": name})
    svc.jobs.wake()
    return web.json_response(run_json(run), status=202)


@routes.get("/api/v1/admin/metrics")
async def metrics_summary(request: web.Request) -> web.Response:
    await _admin(request)
    try:
        days = int(request.query.get("days", "14"))
    except ValueError:
        raise InputError("'days' must be a whole number") from None
    if not 1 <= days <= 366:
        raise InputError("'days' must be between 1 and 366")
    return web.json_response(await summary(services(request).db, days))


@routes.get("/api/v1/admin/uncertain")
async def uncertain(request: web.Request) -> web.Response:
    """Customer messages the model was least sure about, to label first."""
    await _admin(request)
    try:
        limit = max(1, min(500, int(request.query.get("limit", "50"))))
    except ValueError:
        raise InputError("'limit' must be a whole number") from None
    async with services(request).db.session() as s:
        rows = (
            await s.exec(
                select(Message)
                .where(
                    Message.role == Role.CUSTOMER,
                    col(Message.confidence).is_not(None),
                    col(Message.corrected_intent).is_(None),
                )
                .order_by(col(Message.confidence))
                .limit(limit)
            )
        ).all()
    return web.json_response({"messages": [message_json(m) for m in rows]})


# -- API keys: list, create (shown once), revoke ------------------------------------------------


@routes.get("/api/v1/admin/api-keys")
async def api_keys(request: web.Request) -> web.Response:
    await _admin(request)
    rows = await list_api_keys(services(request).db)
    return web.json_response({"api_keys": [api_key_json(k) for k in rows]})


@routes.post("/api/v1/admin/api-keys")
async def create_key(request: web.Request) -> web.Response:
    """Body: ``{"name", "role", "expires_days"?}``; the key is in this answer only."""
    await _admin(request)
    svc = services(request)
    body = await json_body(request)
    name = field(body, "name", str)
    role = field(body, "role", str)
    days = field(body, "expires_days", int, required=False)
    if days is not None and not 1 <= days <= 3650:
        raise InputError("'expires_days' must be between 1 and 3650")
    expires_at = utcnow() + timedelta(days=days) if days else None
    key = await create_api_key(svc.db, name, role, expires_at=expires_at)
    row = next(k for k in await list_api_keys(svc.db) if key.startswith(f"dsk_{k.prefix}_"))
    return web.json_response({"key": key, "api_key": api_key_json(row)}, status=201)


@routes.post("/api/v1/admin/api-keys/{key_id}/revoke")
async def revoke_key(request: web.Request) -> web.Response:
    await _admin(request)
    key_id = path_int(request, "key_id")
    row = await revoke_api_key(services(request).db, key_id, keep_an_admin=True)
    return web.json_response({"api_key": api_key_json(row)})


# -- data-subject requests (GDPR articles 15 and 17) --------------------------------------------


@routes.post("/api/v1/admin/privacy/export")
async def privacy_export(request: web.Request) -> web.Response:
    """Everything stored about one person. Body: exactly one of ``conversation_id``,
    ``email`` or ``platform_user`` ("CHANNEL:ID"); in the body, so no proxy logs it."""
    await _admin(request)
    svc = services(request)
    subject = _subject(await json_body(request))
    return web.json_response(await privacy.export_subject(svc.db, subject))


@routes.post("/api/v1/admin/privacy/erase")
async def privacy_erase(request: web.Request) -> web.Response:
    """Delete everything stored about one person (same body as export); what was touched."""
    await _admin(request)
    svc = services(request)
    subject = _subject(await json_body(request))
    report = await privacy.erase_subject(svc.db, subject, svc.settings)
    report.index_masked = await privacy.mask_live_index(svc, report.pair_ids)
    return web.json_response(report.as_json())


def _subject(body: dict[str, object]) -> privacy.Subject:
    return privacy.parse_subject(
        conversation=field(body, "conversation_id", int, required=False),
        email=field(body, "email", str, required=False),
        platform_user=field(body, "platform_user", str, required=False),
    )


# -- outbox dead letters (issue 20) -----------------------------------------------------------


def _delivery_json(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "conversation_id": row.conversation_id,
        "message_id": row.message_id,
        "channel": row.channel,
        "status": row.status,
        "attempts": row.attempts,
        "last_error": row.last_error,
        "text": (row.payload or {}).get("text"),
        "created_at": row.created_at.isoformat() if row.created_at else None,
        "next_try_at": row.next_try_at.isoformat() if row.next_try_at else None,
    }


@routes.get("/api/v1/admin/outbox")
async def outbox_dead_letters(request: web.Request) -> web.Response:
    """Deliveries given up (attempts, deadline or a permanent error), newest first."""
    from bot.storage.deliveries import dead_letters

    await _admin(request)
    try:
        limit = max(1, min(500, int(request.query.get("limit", "100"))))
    except ValueError:
        raise InputError("'limit' must be a whole number") from None
    rows = await dead_letters(services(request).db, limit)
    return web.json_response({"deliveries": [_delivery_json(r) for r in rows]})


@routes.post("/api/v1/admin/outbox/{outbox_id}/retry")
async def outbox_retry(request: web.Request) -> web.Response:
    """Send a failed delivery again, with fresh attempts and deadline."""
    from bot.storage.deliveries import retry_dead_letter

    await _admin(request)
    svc = services(request)
    row = await retry_dead_letter(svc.db, path_int(request, "outbox_id"))
    if svc.connectors is not None:
        svc.connectors.wake()
    return web.json_response(_delivery_json(row))
