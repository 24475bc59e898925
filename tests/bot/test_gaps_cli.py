"""``deskbot eval discovery`` and ``deskbot gaps mine`` as a user runs them."""

from __future__ import annotations

import asyncio
import csv
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlmodel import select

from bot.cli import cli
from bot.storage.db import Database
from bot.storage.models import GapTopic
from tests.bot.test_gaps import GIFT, NOW, START, seed_gaps
from tests.retrieval.test_discovery import UTTERANCES


def _json(output: str) -> Any:
    return json.loads(output[output.index("{") :])


@pytest.mark.slow
def test_eval_discovery_reports_dstc11_figures(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("DESKBOT_HOME", str(tmp_path))
    data = tmp_path / "utterances.csv"
    with data.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["utterance", "label"])
        for label, texts in UTTERANCES.items():
            writer.writerows([t, label] for t in texts)
    args = ["eval", "discovery", "--data", str(data), "--text-col", "utterance"]
    result = CliRunner().invoke(cli, [*args, "--label-col", "label", "--json"])
    assert result.exit_code == 0, result.output
    report = _json(result.output)
    assert report["method"] == "spectral-consensus"
    assert (report["topics"], report["gold_topics"], report["n"]) == (5, 5, 40)
    assert report["acc"] >= 0.9 and report["f1"] >= 0.9
    assert {"nmi", "ari", "precision", "recall", "seconds", "count_error"} <= set(report)

    base = CliRunner().invoke(cli, [*args, "--label-col", "label", "--method", "baseline"])
    assert base.exit_code == 0, base.output
    assert "kmeans-silhouette on 40 utterances: ACC" in base.output

    bad = CliRunner().invoke(cli, [*args, "--label-col", "intent"])
    assert bad.exit_code != 0 and "missing column 'intent'" in str(bad.exception)


@pytest.mark.slow
def test_gaps_mine_stores_topics(tmp_path: Path, monkeypatch: Any) -> None:
    async def prepare() -> None:
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'deskbot.db'}")
        await db.upgrade()
        await seed_gaps(db)
        await db.dispose()

    async def stored() -> list[GapTopic]:
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'deskbot.db'}")
        try:
            async with db.session() as s:
                return list((await s.exec(select(GapTopic))).all())
        finally:
            await db.dispose()

    asyncio.run(prepare())
    monkeypatch.setenv("DESKBOT_HOME", str(tmp_path))
    period = ["--since", START.isoformat(), "--until", NOW.isoformat()]
    dry = CliRunner().invoke(cli, ["gaps", "mine", *period, "--dry-run", "--json"])
    assert dry.exit_code == 0, dry.output
    assert _json(dry.output)["stored"] is False and asyncio.run(stored()) == []

    result = CliRunner().invoke(cli, ["gaps", "mine", *period, "--json"])
    assert result.exit_code == 0, result.output
    report = _json(result.output)
    assert report["messages"] == 21 and report["topics"] == len(report["topics_found"])
    top = report["topics_found"][0]
    assert top["size"] == len(GIFT) and top["novelty"] == "new" and "gift" in top["name"]
    rows = asyncio.run(stored())
    assert sorted(r.id for r in rows) == sorted(t["id"] for t in report["topics_found"])

    text = CliRunner().invoke(cli, ["gaps", "mine", *period])
    assert text.exit_code == 0 and "21 messages not answered well" in text.output
    bad = CliRunner().invoke(cli, ["gaps", "mine", "--since", "soon"])
    assert bad.exit_code != 0 and "expected a date" in str(bad.exception)
