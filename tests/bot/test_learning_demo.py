"""The demonstration: the bot learns three intents it was never trained on from agents' work.

Slow: trains the real bundled encoder twice (the first bot, shared with the knowledge-gaps
demonstration through the ``first_bot`` fixture, then the retrain job in a child process) on a
small Bitext subset, the retrain with half the first model's epochs.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlmodel import col, select

from bot.api.common import SERVICES
from bot.settings import load_settings
from bot.storage.models import Message, Role
from finetune.intent.classifier import IntentClassifier
from tests.bot.conftest import RETRAIN_EPOCHS, FirstBot
from tests.bot.learning_demo import (
    LEFT_OUT,
    agent_handles,
    answered_with,
    customer_says,
    demo_env,
    left_out_accuracy,
)

pytestmark = pytest.mark.slow


async def test_bot_learns_left_out_intents_from_agents(
    aiohttp_client: Any, embedder: Any, learning_bot: FirstBot, monkeypatch: Any
) -> None:
    from bot.app import create_app

    scenario, old_version = learning_bot.scenario, learning_bot.version
    admin_key, agent_key = learning_bot.admin_key, learning_bot.agent_key
    for key, value in demo_env(learning_bot.home, RETRAIN_EPOCHS).items():
        monkeypatch.setenv(key, value)
    settings = load_settings(server={"rate_limit_per_ip": 1000, "rate_limit_per_conversation": 100})
    client = await aiohttp_client(create_app(settings, embedder=embedder, run_jobs=False))
    svc = client.app[SERVICES]
    admin = {"Authorization": f"Bearer {admin_key}"}
    agent = {"Authorization": f"Bearer {agent_key}"}
    assert svc.runtime.models.versions["intent"] == old_version

    # Customers ask about the left-out intents: the bot cannot answer them on its own (it
    # clarifies, says what it can do, or hands off; an agent answers).
    actions = []
    for intent, asked in scenario.asked.items():
        for question, answer in asked:
            conv_id, body = await customer_says(client, question)
            reply = body["reply"]
            actions.append(reply["action"] if reply["status"] != "handoff" else "handoff")
            await agent_handles(client, agent, conv_id, body, intent, answer)
    answered = [a for a in actions if a in ("answer", "fill", "ask")]
    assert len(answered) <= len(actions) // 10, actions
    old = IntentClassifier.load(svc.runtime.models.intent.path)  # type: ignore[union-attr]
    assert set(LEFT_OUT).isdisjoint(old.labels)  # the first model never saw them

    # The admin starts the retrain job; customers keep asking while it runs and swaps models.
    resp = await client.post(
        "/api/v1/admin/training-runs",
        json={"kind": "retrain", "params": {"intent": True, "index": True}},
        headers=admin,
    )
    assert resp.status == 202, await resp.text()
    run_id = (await resp.json())["id"]
    run = await svc.jobs.claim()
    assert run is not None and run.id == run_id
    job = asyncio.create_task(svc.jobs.execute(run))
    traffic: list[int] = []
    after_swap = 0
    while after_swap < 3:
        # Pairs of concurrent customers, so requests are in flight when the models swap; a
        # pair every half second leaves the CPU to the training it waits for.
        bodies = await asyncio.gather(
            customer_says(client, "I want to track my order"),
            customer_says(client, "how do I cancel my order?"),
        )
        traffic += [body["message"]["id"] for _, body in bodies]
        after_swap += job.done()
        await asyncio.sleep(0.5)
    await job
    finished = await (
        await client.get(f"/api/v1/admin/training-runs/{run_id}", headers=admin)
    ).json()
    assert finished["status"] == "succeeded", finished

    # The gate compared both models on the same held-out set and promoted the candidate.
    models = (await (await client.get("/api/v1/admin/models?kind=intent", headers=admin)).json())[
        "models"
    ]
    new = next(m for m in models if m["status"] == "active")
    assert new["version"] != old_version
    report = new["report"]
    assert report["decision"] == "promoted" and report["against"] == old_version
    assert report["candidate"] > report["active"] + 0.05, report
    assert report["held_out"]["from_logs"] > 0 and report["held_out"]["fixed_eval"] == len(
        scenario.fixed_eval
    )
    for intent in LEFT_OUT:
        assert report["intent_changes"][intent]["active"] == 0.0
    assert svc.runtime.models.versions["intent"] == new["version"]

    # Every request made during the job completed, some answered by each model.
    async with svc.db.session() as s:
        rows = (
            await s.exec(
                select(Message).where(col(Message.id).in_(traffic), Message.role == Role.CUSTOMER)
            )
        ).all()
    assert len(rows) == len(traffic)
    used = {m.model_versions.get("intent") for m in rows}
    assert {old_version, new["version"]} <= used, used

    # New wordings of the left-out questions are now recognised and answered automatically.
    agent_answers = {i: {a for _, a in asked} for i, asked in scenario.asked.items()}
    answered, total = await answered_with(client, scenario.new_wording, agent_answers)
    after = left_out_accuracy(svc.runtime.models.intent, scenario.new_wording)
    print(f"\nleft-out intents, new wordings, recognised after retraining: {after}")
    print(f"answered automatically after retraining: {answered}/{total}")
    print(f"gate: {report['reasons']}")
    assert sum(after.values()) / len(after) >= 0.6, after
    assert answered >= total // 2, (answered, total)
