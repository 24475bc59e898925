"""Connectors by name: the built-in ones and third-party ones from entry points.

A third-party package adds a platform by exposing its ``Connector`` subclass in the
``deskbot.connectors`` entry-point group::

    [project.entry-points."deskbot.connectors"]
    matrix = "deskbot_matrix:MatrixConnector"
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

from bot.errors import SettingsError
from connectors.base import Connector
from connectors.config import ChannelConfig

log = logging.getLogger("deskbot.connectors")

ENTRY_POINT_GROUP = "deskbot.connectors"
BUILTIN_PACKAGES = (
    "connectors.telegram",
    "connectors.slack",
    "connectors.meta",
    "connectors.twilio",
    "connectors.webhook",
)

_registry: dict[str, type[Connector]] = {}
_loaded = False


def register_connector(name: str, cls: type[Connector]) -> None:
    """Make ``cls`` available as ``name``; a name can belong to one class only."""
    if not name or not name.replace("_", "").isalnum() or name != name.lower():
        raise ValueError(f"connector name {name!r} must be lower-case letters, digits and _")
    if not (isinstance(cls, type) and issubclass(cls, Connector)):
        raise TypeError(f"connector {name!r}: {cls!r} is not a Connector subclass")
    existing = _registry.get(name)
    if existing is not None and existing is not cls:
        raise ValueError(
            f"connector name {name!r} is already registered to "
            f"{existing.__module__}.{existing.__qualname__}"
        )
    cls.name = name
    _registry[name] = cls


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    for package in BUILTIN_PACKAGES:
        importlib.import_module(package)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            register_connector(ep.name, ep.load())
        except Exception as exc:
            raise SettingsError(f"connector entry point {ep.name!r} ({ep.value}): {exc}") from exc


def connector_names() -> list[str]:
    _load()
    return sorted(_registry)


def get_connector_class(name: str) -> type[Connector]:
    _load()
    try:
        return _registry[name]
    except KeyError:
        raise SettingsError(
            f"unknown connector {name!r}; expected one of {', '.join(sorted(_registry))}"
        ) from None


def build_channel_config(connector: str, options: Mapping[str, Any]) -> ChannelConfig:
    """Validate one channel's options with its connector's config class."""
    return get_connector_class(connector).config_class.from_options(options)
