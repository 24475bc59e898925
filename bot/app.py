"""The aiohttp application: routes, middlewares and the services' lifetime."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from typing import Any

from aiohttp import web

from bot.api import admin, agent, gaps, ops, sse, widget
from bot.api.common import SERVICES, Handler, cors_middleware, error_middleware
from bot.channel_hub import attach
from bot.dialogue.handoff import watch_handoffs
from bot.events import MODELS, Event
from bot.jobs import RELOADS, JobRunner
from bot.metrics import HTTP_LATENCY, HTTP_REQUESTS
from bot.pipeline import ReplyPipeline
from bot.privacy import PAIRS_ERASED, forget_pairs, purge_loop
from bot.runtime import ModelRuntime
from bot.services import Services
from bot.settings import Settings
from bot.storage.db import Database
from bot.storage.model_versions import active_model_version
from bot.storage.models import TrainingRun

log = logging.getLogger("deskbot.server")


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        HTTP_REQUESTS.labels(request.method, route, str(status)).inc()
        HTTP_LATENCY.labels(route).observe(time.perf_counter() - started)


async def poll_models(runtime: ModelRuntime, every_s: float) -> None:
    """Reload index and intent when their active versions in the database change.

    Catches a process up on activations whose bus event it missed (Redis down, or no Redis
    with several processes); a reload that finds nothing changed loads nothing.
    """
    while True:
        await asyncio.sleep(every_s)
        try:
            changed = [
                kind
                for kind in ("index", "intent")
                if not (kind == "intent" and runtime.settings.intent.model)  # a file, not the DB
                and (row := await active_model_version(runtime.db, kind)) is not None
                and row.version != runtime.models.versions.get(kind)
            ]
            if changed:
                log.info("active %s changed in the database; reloading", ", ".join(changed))
                await runtime.reload(changed)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("polling the active model versions failed")


def create_app(
    settings: Settings,
    *,
    db: Database | None = None,
    load_generator: bool = True,
    run_jobs: bool | None = None,
    embedder: Any = None,
) -> web.Application:
    """Build the server. Services start with the app and close with it."""
    app = web.Application(
        middlewares=[
            metrics_middleware,
            error_middleware,
            cors_middleware(settings.server.cors_origins),
        ],
        # Public bodies are small; admin uploads stream through multipart with their own cap.
        client_max_size=settings.server.max_body_bytes,
    )
    database = db or Database(settings.sqlalchemy_url)
    runtime = ModelRuntime(settings, database, load_generator=load_generator, embedder=embedder)
    svc = Services(settings=settings, db=database, runtime=runtime)
    redis_url = settings.redis_url.get_secret_value()
    if redis_url:  # scaled out: events and rate limits shared by every process
        from bot.redis_bus import RedisBus
        from bot.redis_ratelimit import RedisRateLimiter

        svc.bus = RedisBus(redis_url, prefix=settings.server.redis_prefix)
        svc.limiter = RedisRateLimiter(redis_url, prefix=settings.server.redis_prefix)
    app[SERVICES] = svc
    for table in (
        widget.routes,
        agent.routes,
        admin.routes,
        ops.routes,
        sse.routes,
        gaps.routes,
    ):
        app.router.add_routes(table)
    try:
        from bot.web.routes import add_page_routes
    except ImportError:  # pages not installed in this build
        log.debug("web pages are not available")
    else:
        add_page_routes(app)
    svc.connectors = attach(app, svc)

    pollers: list[asyncio.Task[None]] = []

    async def start(app: web.Application) -> None:
        if db is None:
            await database.upgrade()
        await runtime.load()
        log.info("models loaded: %s", runtime.models.versions)
        # The models and libraries loaded above are millions of long-lived objects; frozen,
        # the cyclic collector stops re-scanning them in full collections, which otherwise
        # pause the event loop (reply latency tails).
        gc.collect()
        gc.freeze()

        svc.pipeline = ReplyPipeline(settings, database, runtime, svc.bus, svc.connectors)
        if svc.connectors is not None:
            await svc.connectors.start()

        async def finished(run: TrainingRun) -> None:
            kinds = RELOADS.get(run.kind)
            if run.status == "succeeded" and kinds:
                await runtime.reload(kinds)
                # Other processes (scaled out on Redis) swap too.
                for kind in kinds:
                    version = runtime.models.versions.get(kind)
                    await svc.bus.publish(
                        MODELS, Event("activated", {"kind": kind, "version": version})
                    )

        svc.jobs = JobRunner(settings, database, on_finished=finished)
        if settings.server.run_jobs if run_jobs is None else run_jobs:
            svc.jobs.start()
            if settings.privacy.retain_days > 0:  # scaled out, `deskbot worker` purges
                pollers.append(svc.spawn(purge_loop(database, settings), name="retention-purge"))
            if settings.gaps.every_hours > 0:
                from bot.gaps import schedule_mining

                pollers.append(
                    svc.spawn(schedule_mining(settings, database, svc.jobs.wake), name="gaps")
                )

        async def follow_models() -> None:
            async with svc.bus.subscribe(MODELS) as events:
                async for event in events:
                    if event.type == "activated":
                        await runtime.reload([event.data["kind"]])
                    elif event.type == PAIRS_ERASED:
                        await forget_pairs(runtime, event.data.get("pair_ids"))
                    elif event.type == "__closed__":
                        return

        svc.spawn(follow_models(), name="follow-models")
        pollers.append(
            svc.spawn(
                watch_handoffs(
                    svc.pipeline.tell_waiting_handoffs,
                    settings.handoff.check_every_s,
                    lambda: svc.closing,
                ),
                name="watch-handoffs",
            )
        )
        # Messages a crashed process left unanswered (bot/recovery.py).
        from bot.recovery import run_recovery

        pollers.append(
            svc.spawn(
                run_recovery(svc, settings.server.recovery_interval_s), name="recover-replies"
            )
        )
        if settings.server.model_poll_s > 0:
            pollers.append(
                svc.spawn(poll_models(runtime, settings.server.model_poll_s), name="poll-models")
            )

    async def shutdown(app: web.Application) -> None:
        svc.closing = True
        for task in pollers:
            task.cancel()
        await svc.bus.close()  # ends SSE streams so in-flight requests can finish

    async def cleanup(app: web.Application) -> None:
        await svc.drain(settings.server.shutdown_timeout_s)
        if svc.jobs is not None:
            await svc.jobs.stop()
        if svc.connectors is not None:
            await svc.connectors.close()
        await runtime.close()
        close_limiter = getattr(svc.limiter, "close", None)
        if close_limiter is not None:
            await close_limiter()
        if db is None:
            await database.dispose()

    app.on_startup.append(start)
    app.on_shutdown.append(shutdown)
    app.on_cleanup.append(cleanup)
    return app
