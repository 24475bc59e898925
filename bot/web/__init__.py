"""The pages the server serves itself: chat widget, demo page, agent console, admin dashboard."""

from __future__ import annotations

from bot.web.routes import STATIC_DIR, add_page_routes

__all__ = ["STATIC_DIR", "add_page_routes"]
