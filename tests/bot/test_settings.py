"""Settings: bad values name their key; secrets never show."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bot.errors import SettingsError
from bot.settings import load_settings


def test_defaults_use_sqlite_under_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DESKBOT_HOME", str(tmp_path))
    s = load_settings()
    assert s.sqlalchemy_url == f"sqlite+aiosqlite:///{tmp_path / 'deskbot.db'}"
    assert s.server.port == 8080 and s.server.policy == "hybrid"


def test_bad_env_value_names_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DESKBOT_SERVER__PORT", "eighty")
    with pytest.raises(SettingsError) as info:
        load_settings()
    assert "'server.port' (DESKBOT_SERVER__PORT)" in info.value.message
    assert "valid integer" in info.value.message and "'eighty'" in info.value.message


def test_toml_file_and_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "deskbot.toml"
    cfg.write_text('[server]\nport = 9000\npolicy = "assist"\n', encoding="utf-8")
    s = load_settings(cfg)
    assert (s.server.port, s.server.policy) == (9000, "assist")

    monkeypatch.setenv("DESKBOT_SERVER__PORT", "9100")  # environment wins over the file
    assert load_settings(cfg).server.port == 9100

    cfg.write_text('[server]\npolicy = "yolo"\n', encoding="utf-8")
    with pytest.raises(SettingsError, match=r"'server.policy'.*'auto', 'assist' or 'hybrid'"):
        load_settings(cfg)
    cfg.write_text("[server]\nprot = 1\n", encoding="utf-8")
    with pytest.raises(SettingsError, match=r"unknown setting 'server.prot'"):
        load_settings(cfg)
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(tmp_path / "missing.toml")


def test_database_url_must_name_an_async_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DESKBOT_DATABASE_URL", "mysql://root@localhost/x")
    with pytest.raises(SettingsError, match=r"DESKBOT_DATABASE_URL.*postgresql\+asyncpg"):
        load_settings()


def test_config_show_masks_secrets(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin:/bin",
        "DESKBOT_HOME": str(tmp_path),
        "DESKBOT_DATABASE_URL": "postgresql+asyncpg://deskbot:hunter2@db.internal:5432/deskbot",
        "DESKBOT_REDIS_URL": "redis://:s3cret@cache:6379/0",
        "DESKBOT_GENERATION__REMOTE_API_KEY": "sk-live-abcdef",
    }
    out = subprocess.run(
        [sys.executable, "-m", "bot", "config", "show"], capture_output=True, text=True, env=env
    )
    assert out.returncode == 0, out.stderr
    shown = json.loads(out.stdout)
    for secret in ("hunter2", "s3cret", "sk-live-abcdef"):
        assert secret not in out.stdout
    assert shown["database_url"] == "postgresql+asyncpg://deskbot:********@db.internal:5432/deskbot"
    assert shown["generation"]["remote_api_key"] == "********"
    assert shown["home"] == str(tmp_path)

    env["DESKBOT_SERVER__PORT"] = "0"
    bad = subprocess.run(
        [sys.executable, "-m", "bot", "config", "show"], capture_output=True, text=True, env=env
    )
    assert bad.returncode == 2
    assert "DESKBOT_SERVER__PORT" in bad.stderr and "Traceback" not in bad.stderr
