"""Chat-platform connectors: webhooks in, durable replies out.

The server uses :func:`~connectors.http.make_webhook_app`, a :class:`ConnectorSet` built from
settings, :func:`~connectors.outbox.enqueue` and a :class:`~connectors.outbox.DeliveryWorker`.
"""

from __future__ import annotations

from connectors.base import Connector, DeliveryResult, InboundMessage, OutboundMessage
from connectors.connector_set import ConnectorSet
from connectors.errors import (
    ChannelConfigError,
    DeliveryError,
    PermanentDeliveryError,
    RetryableDeliveryError,
)
from connectors.registration import connector_names, get_connector_class, register_connector

__all__ = [
    "ChannelConfigError",
    "Connector",
    "ConnectorSet",
    "DeliveryError",
    "DeliveryResult",
    "InboundMessage",
    "OutboundMessage",
    "PermanentDeliveryError",
    "RetryableDeliveryError",
    "connector_names",
    "get_connector_class",
    "register_connector",
]
