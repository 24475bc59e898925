"""The learning demonstration, shared by tests/bot/test_learning_demo.py and benchmarks/learning.py.

A bot trained on Bitext with three intents left out meets customers asking about them: it hands
off, agents answer and label through the agent API, the admin runs the retrain job, and the
bot then recognises and answers new wordings of those questions itself.

Data: Bitext customer-support (CDLA-Sharing-1.0), read from ../shared/data/bitext.
"""

from __future__ import annotations

import asyncio
import csv
import gzip
import json
import random
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.auth import create_api_key
from bot.importer import import_file
from bot.storage.db import Database
from bot.storage.model_versions import activate_model_version, register_model_version

LEFT_OUT = ("newsletter_subscription", "check_payment_methods", "delivery_options")
# The first model's epochs, the quick preset's; fewer leave it overconfident on unseen intents.
DEMO_EPOCHS = 8
_PLACEHOLDER = re.compile(r"\{\{[^}]*\}\}")


@dataclass(frozen=True)
class Scenario:
    base: list[tuple[str, str, str]]  # question, answer, intent: what the bot starts with
    fixed_eval: list[tuple[str, str]]  # question, intent: known intents, never trained on
    asked: dict[str, list[tuple[str, str]]]  # left-out intent -> (question, agent's answer)
    new_wording: dict[str, list[str]]  # left-out intent -> questions never seen in the logs


def load_scenario(
    data_dir: Path,
    *,
    per_intent: int = 25,
    eval_per_intent: int = 6,
    asked_per_intent: int = 16,
    new_per_intent: int = 8,
    seed: int = 7,
) -> Scenario:
    rows: dict[str, dict[str, str]] = defaultdict(dict)
    path = data_dir / "bitext" / "bitext_cs_train.csv.gz"
    with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            question = row["instruction"].strip()
            if "\ufffd" in question or "{{" in question:
                continue
            rows[row["intent"]].setdefault(question, row["response"].strip())
    rng = random.Random(seed)
    base, fixed = [], []
    asked: dict[str, list[tuple[str, str]]] = {}
    new: dict[str, list[str]] = {}
    for intent in sorted(rows):
        questions = sorted(rows[intent])
        rng.shuffle(questions)
        if intent in LEFT_OUT:
            asked[intent] = [
                (q, agent_answer(rows[intent][q])) for q in questions[:asked_per_intent]
            ]
            new[intent] = questions[asked_per_intent : asked_per_intent + new_per_intent]
            continue
        base += [(q, rows[intent][q], intent) for q in questions[:per_intent]]
        fixed += [(q, intent) for q in questions[per_intent : per_intent + eval_per_intent]]
    return Scenario(base, fixed, asked, new)


def agent_answer(bitext_response: str) -> str:
    """An agent fills in Bitext's placeholders before sending."""
    return _PLACEHOLDER.sub("our website", bitext_response)


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[str]]) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


async def prepare_home(
    home: Path, scenario: Scenario, embedder: Any, hp: Any
) -> tuple[str, str, str]:
    """Import the base pairs, build the index, train and activate the first intent model.

    Returns (intent version, admin key, agent key).
    """
    from finetune.intent.data import Examples
    from finetune.intent.train import new_version, train_intent
    from tests.conftest import build_index

    home.mkdir(parents=True, exist_ok=True)
    base_csv = write_csv(home / "base.csv", ("instruction", "response", "intent"), scenario.base)
    write_csv(home / "fixed_eval.csv", ("text", "intent"), scenario.fixed_eval)
    db = Database(f"sqlite+aiosqlite:///{home / 'deskbot.db'}")
    try:
        await db.upgrade()
        await import_file(db, base_csv)
        await build_index(home, db, embedder)
        examples = Examples.from_pairs((q, i) for q, _, i in scenario.base)
        version = new_version(examples.digest())
        path = await asyncio.to_thread(
            train_intent, examples, hp, home / "models" / "intent" / version, False, version=version
        )
        await register_model_version(db, "intent", version, path, {})
        await activate_model_version(db, "intent", version)
        admin = await create_api_key(db, "Root", "admin")
        agent = await create_api_key(db, "Ada", "agent")
    finally:
        await db.dispose()
    return version, admin, agent


async def customer_says(client: Any, text: str) -> tuple[int, dict[str, Any]]:
    resp = await client.post("/api/v1/conversations")
    assert resp.status == 201, await resp.text()
    conv = await resp.json()
    auth = {"Authorization": f"Bearer {conv['token']}"}
    resp = await client.post(
        f"/api/v1/conversations/{conv['id']}/messages", json={"text": text}, headers=auth
    )
    assert resp.status == 200, await resp.text()
    return conv["id"], await resp.json()


async def answered_with(
    client: Any, new_wording: dict[str, list[str]], answers: dict[str, set[str]]
) -> tuple[int, int]:
    """How many of the new wordings the bot answers itself, with the right intent and one of
    that intent's agent ``answers``; and how many were asked."""
    answered = total = 0
    for intent, questions in new_wording.items():
        for question in questions:
            _, body = await customer_says(client, question)
            reply = body["reply"]
            total += 1
            answered += (
                reply["status"] == "sent"
                and reply["intent"] == intent
                and reply["text"] in answers[intent]
            )
    return answered, total


async def agent_handles(
    client: Any,
    agent: dict[str, str],
    conv_id: int,
    body: dict[str, Any],
    intent: str | None,
    answer: str,
) -> None:
    """What an agent does with a conversation the bot could not answer on its own: answer it,
    and label the customer's message with ``intent`` unless that is None."""
    message_id = body["message"]["id"]
    if body["reply"]["status"] == "pending_review":
        view = await (
            await client.get(f"/api/v1/agent/conversations/{conv_id}", headers=agent)
        ).json()
        pending = [s for s in view["suggestions"] if s["status"] == "pending"]
        resp = await client.post(
            f"/api/v1/agent/suggestions/{pending[-1]['id']}/edit",
            json={"text": answer, **({"intent": intent} if intent else {})},
            headers=agent,
        )
        assert resp.status == 200, await resp.text()
        return
    resp = await client.post(
        f"/api/v1/agent/conversations/{conv_id}/messages", json={"text": answer}, headers=agent
    )
    assert resp.status == 201, await resp.text()
    if intent is None:
        return
    resp = await client.post(
        f"/api/v1/agent/messages/{message_id}/label", json={"intent": intent}, headers=agent
    )
    assert resp.status == 200, await resp.text()


def demo_env(home: Path, epochs: int) -> dict[str, str]:
    """The settings the demonstrations run under, as environment variables: the retrain job
    runs `deskbot retrain` as a child process, which reads the same settings from there."""
    return {
        "DESKBOT_HOME": str(home),
        "DESKBOT_LEARNING__EVAL_DATA": str(home / "fixed_eval.csv"),
        "DESKBOT_LEARNING__INTENT_PRESET": "quick",
        "DESKBOT_LEARNING__INTENT_EPOCHS": str(epochs),
        # Six held-out questions per known intent: one more miss is a 0.17 drop; allow two.
        "DESKBOT_LEARNING__MAX_INTENT_DROP": "0.34",
        "DESKBOT_GENERATION__BACKEND": "off",
    }


def left_out_accuracy(classifier: Any, new_wording: dict[str, list[str]]) -> dict[str, float]:
    """Share of new-wording questions given their true intent with a confident verdict."""
    out = {}
    for intent, questions in new_wording.items():
        preds = classifier.predict(list(questions))
        out[intent] = sum(p.intent == intent and p.verdict == "confident" for p in preds) / len(
            preds
        )
    return out


def first_bot_home() -> Path:
    """Where the child process prepares the first bot (the session's scratch directory)."""
    from tests import head_start

    return head_start.scratch() / "first-bot" / "home"


def first_bot_args(data_dir: Path) -> tuple[str, ...]:
    """The command (after ``python``) that prepares the first bot in a child process."""
    return ("-m", "tests.bot.learning_demo", str(first_bot_home()), str(data_dir))


def read_first_bot(home: Path) -> dict[str, str]:
    """What :func:`main` wrote: the first model's version and the two API keys."""
    return json.loads((home / "first_bot.json").read_text())  # type: ignore[no-any-return]


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m tests.bot.learning_demo HOME DATA``: the first bot, prepared in HOME from
    the shared data sets in DATA, on one thread (the suite runs beside it)."""
    import sys

    import torch

    from finetune.intent.hparams import IntentHyperParams
    from retrieval.embedder import Embedder

    home, data = (Path(a) for a in (argv or sys.argv[1:])[:2])
    torch.set_num_threads(1)
    hp = IntentHyperParams.quick().with_(epochs=DEMO_EPOCHS)
    version, admin, agent = asyncio.run(prepare_home(home, load_scenario(data), Embedder(), hp))
    info = {"version": version, "admin_key": admin, "agent_key": agent}
    (home / "first_bot.json").write_text(json.dumps(info))


if __name__ == "__main__":
    main()
