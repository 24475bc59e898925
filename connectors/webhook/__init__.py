"""Generic signed JSON webhook: bridges any platform that can sign an HTTP request."""

from __future__ import annotations

from connectors.registration import register_connector
from connectors.webhook.config import WebhookConfig
from connectors.webhook.connector import WebhookConnector
from connectors.webhook.signature import sign, verify_signature

register_connector("webhook", WebhookConnector)

__all__ = ["WebhookConfig", "WebhookConnector", "sign", "verify_signature"]
