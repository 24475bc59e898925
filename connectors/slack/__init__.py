"""Slack Events API in, ``chat.postMessage`` out."""

from __future__ import annotations

from connectors.registration import register_connector
from connectors.slack.config import SlackConfig
from connectors.slack.connector import SlackConnector

register_connector("slack", SlackConnector)

__all__ = ["SlackConfig", "SlackConnector"]
