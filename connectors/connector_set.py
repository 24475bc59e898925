"""The set of configured channels, each with its connector instance."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping

from bot.errors import NotFoundError, SettingsError
from connectors.base import Connector
from connectors.config import ChannelConfig, channel_name_problem
from connectors.registration import get_connector_class

log = logging.getLogger("deskbot.connectors")


class ConnectorSet:
    """Connectors by ``(connector name, channel name)`` and by channel key ``"slack:main"``."""

    def __init__(self, connectors: list[Connector] | None = None) -> None:
        self._by_key: dict[str, Connector] = {}
        for connector in connectors or []:
            self.add(connector)

    def add(self, connector: Connector) -> None:
        problem = channel_name_problem(connector.channel)
        if problem is not None:
            raise SettingsError(problem)
        if connector.channel_key in self._by_key:
            raise SettingsError(f"channel {connector.channel_key!r} is configured twice")
        self._by_key[connector.channel_key] = connector

    @classmethod
    def from_configs(cls, channels: Mapping[str, tuple[str, ChannelConfig]]) -> ConnectorSet:
        """From ``{channel name: (connector name, typed config)}``."""
        return cls([get_connector_class(kind)(name, cfg) for name, (kind, cfg) in channels.items()])

    @classmethod
    def from_settings(cls, section: object) -> ConnectorSet:
        """From ``settings.connectors``: every enabled channel."""
        channels = getattr(section, "channels", {})
        return cls.from_configs(
            {name: (ch.connector, ch.config) for name, ch in channels.items() if ch.enabled}
        )

    def get(self, connector: str, channel: str) -> Connector:
        found = self._by_key.get(f"{connector}:{channel}")
        if found is None:
            raise NotFoundError(f"no channel {channel!r} for connector {connector!r}")
        return found

    def by_key(self, channel_key: str) -> Connector:
        found = self._by_key.get(channel_key)
        if found is None:
            raise NotFoundError(f"no channel {channel_key!r} is configured")
        return found

    def __contains__(self, channel_key: object) -> bool:
        return channel_key in self._by_key

    def __iter__(self) -> Iterator[Connector]:
        return iter(self._by_key.values())

    def __len__(self) -> int:
        return len(self._by_key)

    async def close(self) -> None:
        for connector in self._by_key.values():
            try:
                await connector.close()
            except Exception:
                log.warning("closing %s failed", connector.channel_key, exc_info=True)
