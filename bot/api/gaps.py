"""Admin routes for knowledge gaps: mine topics (a job), list and open them, and accept one as
a new intent, merge it into a known intent or dismiss it (``bot/gaps.py``)."""

from __future__ import annotations

from aiohttp import web
from sqlmodel import col, select

from bot.api.common import field, json_body, path_int, principal, services
from bot.errors import InputError, NotFoundError
from bot.gaps import (
    accept_topic,
    dismiss_topic,
    known_intents,
    last_mining_run,
    merge_topic,
    topic_json,
)
from bot.jobs import enqueue
from bot.scrub import Scrubber
from bot.serialize import run_json
from bot.storage.models import GapStatus, GapTopic

routes = web.RouteTableDef()
STATUSES = tuple(s.value for s in GapStatus)


async def _known(svc: object) -> set[str]:
    model = svc.runtime.models.intent  # type: ignore[attr-defined]
    labels = model.labels if model is not None else ()
    return await known_intents(svc.db, svc.settings, labels)  # type: ignore[attr-defined]


@routes.get("/api/v1/admin/gaps")
async def list_topics(request: web.Request) -> web.Response:
    """Topics ranked by size (``?status=open`` by default), the known intents to merge into,
    and the latest mining run."""
    await principal(request, "admin")
    svc = services(request)
    status = request.query.get("status", GapStatus.OPEN.value)
    if status not in STATUSES:
        raise InputError(f"'status' must be one of {', '.join(STATUSES)}")
    minimum = svc.settings.gaps.min_examples
    async with svc.db.session() as s:
        rows = (
            await s.exec(
                select(GapTopic)
                .where(GapTopic.status == status)
                .order_by(col(GapTopic.size).desc(), col(GapTopic.id))
                .limit(500)
            )
        ).all()
        last = await last_mining_run(s)
    return web.json_response(
        {
            "topics": [topic_json(t, minimum) for t in rows],
            "intents": sorted(await _known(svc)),
            "min_examples": minimum,
            "last_run": run_json(last) if last is not None else None,
        }
    )


@routes.get("/api/v1/admin/gaps/{topic_id}")
async def get_topic(request: web.Request) -> web.Response:
    await principal(request, "admin")
    svc = services(request)
    async with svc.db.session() as s:
        topic = await s.get(GapTopic, path_int(request, "topic_id"))
    if topic is None:
        raise NotFoundError("no such topic")
    return web.json_response(topic_json(topic, svc.settings.gaps.min_examples, full=True))


@routes.post("/api/v1/admin/gaps/mine")
async def mine_job(request: web.Request) -> web.Response:
    """Queue a mining job (``deskbot gaps mine``). Body (optional): ``{"since": "YYYY-MM-DD"}``."""
    from bot.export import parse_since

    await principal(request, "admin")
    svc = services(request)
    body = await json_body(request) if (await request.read()).strip() else {}
    params = {}
    since = field(body, "since", str, required=False)
    if since:
        parse_since(since)
        params["since"] = since
    run = await enqueue(svc.db, "gaps", params)
    svc.jobs.wake()
    return web.json_response(run_json(run), status=202)


@routes.post("/api/v1/admin/gaps/{topic_id}/accept")
async def accept(request: web.Request) -> web.Response:
    """Body: ``{"intent": "new_name", "answer": "the reply"}``. Labels the topic's messages,
    adds the answer for them to the live index and queues the gated retraining."""
    who = await principal(request, "admin")
    svc = services(request)
    body = await json_body(request)
    done = await accept_topic(
        svc.db,
        path_int(request, "topic_id"),
        intent=body.get("intent"),
        answer=body.get("answer"),
        by=who.name,
        min_examples=svc.settings.gaps.min_examples,
        known=await _known(svc),
        scrubber=Scrubber.from_settings(svc.settings.learning),
    )
    if done.pairs:
        await svc.runtime.add_pairs(done.pairs)
    if svc.jobs is not None:
        svc.jobs.wake()
    return web.json_response(
        {
            "topic": topic_json(done.topic, svc.settings.gaps.min_examples),
            "run": run_json(done.run) if done.run else None,
            "pairs": len(done.pairs),
        }
    )


@routes.post("/api/v1/admin/gaps/{topic_id}/merge")
async def merge(request: web.Request) -> web.Response:
    """Body: ``{"intent": "known_intent"}``. Labels the topic's messages with it and queues the
    gated intent retraining."""
    who = await principal(request, "admin")
    svc = services(request)
    body = await json_body(request)
    done = await merge_topic(
        svc.db,
        path_int(request, "topic_id"),
        intent=body.get("intent"),
        by=who.name,
        known=await _known(svc),
    )
    if svc.jobs is not None:
        svc.jobs.wake()
    return web.json_response(
        {
            "topic": topic_json(done.topic, svc.settings.gaps.min_examples),
            "run": run_json(done.run) if done.run else None,
        }
    )


@routes.post("/api/v1/admin/gaps/{topic_id}/dismiss")
async def dismiss(request: web.Request) -> web.Response:
    who = await principal(request, "admin")
    svc = services(request)
    topic = await dismiss_topic(svc.db, path_int(request, "topic_id"), by=who.name)
    return web.json_response({"topic": topic_json(topic, svc.settings.gaps.min_examples)})
