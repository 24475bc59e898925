"""The aiohttp application: routes, middlewares and the services' lifetime."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from typing import Any

from aiohttp import web

from bot import model_sync
from bot.api import admin, agent, gaps, ops, sse, widget
from bot.api.common import SERVICES, Handler, cors_middleware, error_middleware
from bot.channel_hub import attach
from bot.dialogue.handoff import watch_handoffs
from bot.jobs import JobRunner
from bot.metrics import HTTP_LATENCY, HTTP_REQUESTS
from bot.pipeline import ReplyPipeline
from bot.privacy import purge_loop
from bot.runtime import ModelRuntime
from bot.services import Services
from bot.settings import Settings
from bot.storage.db import Database

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

        svc.jobs = JobRunner(
            settings, database, on_finished=model_sync.after_jobs(database, svc.bus, runtime)
        )
        if settings.server.run_jobs if run_jobs is None else run_jobs:
            svc.jobs.start()
            if settings.privacy.retain_days > 0:  # scaled out, `deskbot worker` purges
                pollers.append(svc.spawn(purge_loop(database, settings), name="retention-purge"))
            if settings.gaps.every_hours > 0:
                from bot.gaps import schedule_mining

                pollers.append(
                    svc.spawn(schedule_mining(settings, database, svc.jobs.wake), name="gaps")
                )

        svc.spawn(model_sync.follow(runtime, svc.bus), name="follow-models")
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
                svc.spawn(
                    model_sync.poll(runtime, settings.server.model_poll_s), name="poll-models"
                )
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
