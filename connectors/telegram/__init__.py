"""Telegram Bot API: webhook updates in, ``sendMessage`` out."""

from __future__ import annotations

from connectors.registration import register_connector
from connectors.telegram.config import TelegramConfig
from connectors.telegram.connector import TelegramConnector, set_webhook

register_connector("telegram", TelegramConnector)

__all__ = ["TelegramConfig", "TelegramConnector", "set_webhook"]
