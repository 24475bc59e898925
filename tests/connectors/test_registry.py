"""The connector registry and per-channel settings: typed, masked, and checked at start-up."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from bot.cli import cli
from bot.errors import SettingsError
from bot.settings import load_settings
from connectors import registration
from connectors.base import Connector
from connectors.connector_set import ConnectorSet
from connectors.telegram import TelegramConfig, TelegramConnector
from connectors.webhook import WebhookConnector

TELEGRAM = {
    "connector": "telegram",
    "bot_token": "123456:ABC-DEF-0123456789",
    "secret_token": "tg_secret-1-0123456789",
}


def test_a_connector_name_belongs_to_one_class() -> None:
    registration.register_connector("telegram", TelegramConnector)  # same class again: fine

    class Impostor(WebhookConnector):
        pass

    with pytest.raises(ValueError, match="already registered"):
        registration.register_connector("telegram", Impostor)
    with pytest.raises(TypeError):
        registration.register_connector("thing", dict)  # type: ignore[arg-type]


def test_third_party_connectors_come_from_entry_points(monkeypatch: pytest.MonkeyPatch) -> None:
    class MatrixConnector(WebhookConnector):
        pass

    class EntryPoint:
        name, value = "matrix", "deskbot_matrix:MatrixConnector"

        def load(self) -> type[Connector]:
            return MatrixConnector

    monkeypatch.setattr(registration, "_registry", dict(registration._registry))
    monkeypatch.setattr(registration, "_loaded", False)
    monkeypatch.setattr(registration, "entry_points", lambda group: [EntryPoint()])
    assert "matrix" in registration.connector_names()
    assert registration.get_connector_class("matrix") is MatrixConnector


def test_channel_settings_are_typed_and_secrets_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {**TELEGRAM, "timeout_s": "2.5", "quote_replies": "true"}.items():
        monkeypatch.setenv(f"DESKBOT_CONNECTORS__CHANNELS__MAIN__{key.upper()}", value)
    settings = load_settings()
    config = settings.connectors.channels["main"].config
    assert isinstance(config, TelegramConfig)
    assert (config.timeout_s, config.quote_replies, config.bot_token) == (
        2.5,
        True,
        "123456:ABC-DEF-0123456789",
    )
    shown = json.dumps(settings.masked())
    assert "ABC-DEF" not in shown and "tg_secret-1-0123456789" not in shown
    assert "ABC-DEF" not in repr(config)
    connectors = ConnectorSet.from_settings(settings.connectors)
    assert [c.channel_key for c in connectors] == ["telegram:main"]


@pytest.mark.parametrize(
    ("channel", "message"),
    [
        ({"connector": "telegram", "bot_token": "123:abc"}, "'secret_token': is required"),
        ({**TELEGRAM, "secret_token": "has spaces 0123456789"}, "'secret_token': must be 1-256"),
        ({**TELEGRAM, "timeout_s": "soon"}, "'timeout_s': expected float"),
        ({**TELEGRAM, "colour": "blue"}, "'colour': unknown option"),
        ({"connector": "icq"}, "unknown connector 'icq'"),
        (
            {"connector": "webhook", "secret": "x" * 20, "callback_url": "ftp://x"},
            "'callback_url': expected an http(s) URL",
        ),
    ],
)
def test_bad_channel_settings_name_the_channel_and_option(
    channel: dict[str, Any], message: str
) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(connectors={"channels": {"support": channel}})
    assert "connectors.channels.support" in str(err.value)
    assert message in str(err.value)


def test_channel_names_must_fit_the_webhook_path() -> None:
    with pytest.raises(SettingsError, match="channel name 'Bad Name'"):
        load_settings(connectors={"channels": {"Bad Name": TELEGRAM}})


@pytest.mark.parametrize(
    ("channel", "option"),
    [
        ({**TELEGRAM, "secret_token": "a"}, "secret_token"),
        ({"connector": "webhook", "secret": "s" * 15, "callback_url": "http://x"}, "secret"),
        (
            {
                "connector": "webhook",
                "secret": "s" * 16,
                "callback_secret": "short",
                "callback_url": "http://x",
            },
            "callback_secret",
        ),
        (
            {
                "connector": "slack",
                "signing_secret": "s" * 32,
                "bot_token": "xoxb-1",
            },
            "bot_token",
        ),
    ],
)
def test_a_short_connector_secret_fails_start_up_naming_it(
    channel: dict[str, Any], option: str, tmp_path: Path
) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(connectors={"channels": {"main": channel}})
    assert f"option {option!r}: is " in str(err.value)
    assert "use at least 16" in str(err.value)
    # `deskbot serve` stops before serving, with the same one-line message.
    config = tmp_path / "deskbot.toml"
    lines = [f"{k} = {json.dumps(v)}" for k, v in channel.items()]
    config.write_text("[connectors.channels.main]\n" + "\n".join(lines) + "\n")
    result = CliRunner().invoke(cli, ["--config", str(config), "serve"])
    assert result.exit_code != 0
    assert f"option {option!r}" in str(result.exception)


def test_sixteen_character_secrets_are_accepted() -> None:
    settings = load_settings(
        connectors={"channels": {"main": {**TELEGRAM, "secret_token": "a" * 16}}}
    )
    assert settings.connectors.channels["main"].config.secret_token == "a" * 16
