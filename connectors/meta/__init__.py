"""Meta platforms: Messenger and the WhatsApp Cloud API (Graph API webhooks and send)."""

from __future__ import annotations

from connectors.meta.config import MessengerConfig, WhatsAppConfig
from connectors.meta.messenger import MessengerConnector
from connectors.meta.whatsapp import WhatsAppConnector
from connectors.registration import register_connector

register_connector("messenger", MessengerConnector)
register_connector("whatsapp", WhatsAppConnector)

__all__ = ["MessengerConfig", "MessengerConnector", "WhatsAppConfig", "WhatsAppConnector"]
