"""Routes for the static pages: plain HTML/CSS/JS from ``static/``, no build step.

The pages talk only to the JSON API under ``/api/v1``. They are served with a strict
Content-Security-Policy (scripts from this origin only), so even a text that slipped into the
DOM as HTML could not run script.
"""

from __future__ import annotations

import logging
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler

from bot.errors import DeskbotError

log = logging.getLogger("deskbot.web")

STATIC_DIR = Path(__file__).parent / "static"

# Inline style attributes are allowed (the widget styles its shadow root with a <style>
# element); scripts, frames and form targets are limited to this origin.
PAGE_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; form-action 'self'; object-src 'none'"
)
# The demo page may be framed by the operator's own site previews, the consoles not.
DEMO_CSP = PAGE_CSP.replace("frame-ancestors 'none'", "frame-ancestors 'self'")

PAGES: dict[str, tuple[str, str]] = {
    "/": ("demo.html", DEMO_CSP),
    "/agent": ("agent.html", PAGE_CSP),
    "/admin": ("admin.html", PAGE_CSP),
    "/admin/gaps": ("gaps.html", PAGE_CSP),
}


def _page_handler(filename: str, csp: str) -> Handler:
    path = STATIC_DIR / filename

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(
            path,
            headers={
                "Content-Type": "text/html; charset=utf-8",
                "Content-Security-Policy": csp,
                "X-Content-Type-Options": "nosniff",
                "Referrer-Policy": "no-referrer",
                "Cache-Control": "no-cache",
            },
        )

    handler.__name__ = f"page_{path.stem}"
    return handler


async def widget_js(request: web.Request) -> web.StreamResponse:
    """The embeddable widget; other sites load it cross-origin with a plain <script> tag."""
    return web.FileResponse(
        STATIC_DIR / "widget.js",
        headers={
            "Content-Type": "text/javascript; charset=utf-8",
            "Access-Control-Allow-Origin": "*",
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "public, max-age=300",
        },
    )


def add_page_routes(app: web.Application) -> None:
    """Register ``GET /``, ``/widget.js``, ``/agent``, ``/admin`` and ``/static/...``."""
    missing = [name for name, _ in PAGES.values() if not (STATIC_DIR / name).is_file()]
    if missing:  # a broken install (package data left out) should fail at start, not per request
        raise DeskbotError(f"deskbot web pages are missing from {STATIC_DIR}: {', '.join(missing)}")
    for route, (filename, csp) in PAGES.items():
        app.router.add_get(route, _page_handler(filename, csp))
    app.router.add_get("/widget.js", widget_js)
    app.router.add_static("/static/", STATIC_DIR, name="static", append_version=False)
    log.debug("page routes added from %s", STATIC_DIR)
