"""Twilio Programmable Messaging (SMS and WhatsApp): form webhooks in, Messages API out."""

from __future__ import annotations

from connectors.registration import register_connector
from connectors.twilio.config import TwilioConfig
from connectors.twilio.connector import TwilioConnector

register_connector("twilio", TwilioConnector)

__all__ = ["TwilioConfig", "TwilioConnector"]
