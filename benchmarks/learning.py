# ruff: noqa: E402 - sys.path and the environment are set before the imports
"""Learning from the logs, end to end: the demonstration of tests/bot/test_learning_demo.py, larger.

    flock /tmp/deskbot-cpu.lock .venv/bin/python benchmarks/learning.py [--per-intent 25 ...]

Bitext with three intents left out (tests/bot/learning_demo.py): the bot is trained on the other 24,
customers ask about the left-out ones through the widget API, simulated agents answer and label
them through the agent API, the admin starts the retrain job through the admin API (run by the
server's JobRunner as a `deskbot retrain` child process) while customers keep asking.

Reports: how the bot treated the left-out questions before and after (auto-answered with the
right intent), the share of new-wording questions the intent model gets right and confident,
the gate's held-out figures, training and job times, and requests served during the job.
Prints a table and writes benchmarks/results/learning.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch
from aiohttp.test_utils import TestClient, TestServer

from bot.api.common import SERVICES
from bot.settings import load_settings
from finetune.intent.classifier import IntentClassifier
from finetune.intent.hparams import IntentHyperParams
from retrieval.embedder import Embedder
from tests.bot.learning_demo import (
    agent_handles,
    customer_says,
    left_out_accuracy,
    load_scenario,
    prepare_home,
)

DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"


async def ask_all(client: Any, new_wording: dict[str, list[str]]) -> dict[str, float]:
    """Share of new-wording questions answered automatically with the right intent."""
    out = {}
    for intent, questions in new_wording.items():
        ok = 0
        for q in questions:
            _, body = await customer_says(client, q)
            ok += body["reply"]["status"] == "sent" and body["reply"]["intent"] == intent
        out[intent] = ok / len(questions)
    return out


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from bot.app import create_app

    scenario = load_scenario(
        DATA,
        per_intent=args.per_intent,
        eval_per_intent=args.eval_per_intent,
        asked_per_intent=args.asked,
        new_per_intent=args.new,
    )
    home = Path(tempfile.mkdtemp(prefix="deskbot-learning-")) / "home"
    embedder = Embedder()
    hp = IntentHyperParams.quick().with_(epochs=args.epochs)
    started = time.perf_counter()
    old_version, admin_key, agent_key = await prepare_home(home, scenario, embedder, hp)
    first_train_s = time.perf_counter() - started
    os.environ.update(
        {
            "DESKBOT_HOME": str(home),
            "DESKBOT_LEARNING__EVAL_DATA": str(home / "fixed_eval.csv"),
            "DESKBOT_LEARNING__INTENT_PRESET": "quick",
            "DESKBOT_LEARNING__INTENT_EPOCHS": str(args.epochs),
            "DESKBOT_LEARNING__MAX_INTENT_DROP": str(args.max_intent_drop),
            "DESKBOT_GENERATION__BACKEND": "off",
        }
    )
    settings = load_settings(server={"rate_limit_per_ip": 1000, "rate_limit_per_conversation": 100})
    client = TestClient(TestServer(create_app(settings, embedder=embedder, run_jobs=False)))
    await client.start_server()
    try:
        svc = client.app[SERVICES]
        admin = {"Authorization": f"Bearer {admin_key}"}
        agent = {"Authorization": f"Bearer {agent_key}"}
        old = IntentClassifier.load(svc.runtime.models.intent.path)
        before_model = left_out_accuracy(old, scenario.new_wording)
        statuses: list[str] = []
        for intent, asked in scenario.asked.items():
            for question, answer in asked:
                conv_id, body = await customer_says(client, question)
                statuses.append(body["reply"]["status"])
                await agent_handles(client, agent, conv_id, body, intent, answer)
        resp = await client.post(
            "/api/v1/admin/training-runs",
            json={"kind": "retrain", "params": {"intent": True, "index": True}},
            headers=admin,
        )
        run_id = (await resp.json())["id"]
        run_row = await svc.jobs.claim()
        job_started = time.perf_counter()
        job = asyncio.create_task(svc.jobs.execute(run_row))
        latencies: list[float] = []
        failures = 0
        after_swap = 0
        while after_swap < 3:
            t0 = time.perf_counter()
            try:
                await customer_says(client, "I want to track my order")
            except AssertionError:
                failures += 1
            latencies.append((time.perf_counter() - t0) * 1000)
            after_swap += job.done()
            await asyncio.sleep(0.1)
        await job
        job_s = time.perf_counter() - job_started
        finished = await (
            await client.get(f"/api/v1/admin/training-runs/{run_id}", headers=admin)
        ).json()
        models = (
            await (await client.get("/api/v1/admin/models?kind=intent", headers=admin)).json()
        )["models"]
        candidate = next(m for m in models if m["version"] != old_version)
        # The candidate's own figures, promoted or not; the bot's answers use the active model.
        after_model = left_out_accuracy(
            IntentClassifier.load(candidate["path"]), scenario.new_wording
        )
        after_api = await ask_all(client, scenario.new_wording)
    finally:
        await client.close()
    report = candidate["report"]
    return {
        "scale": {
            "known_intents": 27 - len(scenario.asked),
            "base_questions": len(scenario.base),
            "fixed_eval": len(scenario.fixed_eval),
            "asked_per_left_out_intent": args.asked,
            "new_wordings_per_left_out_intent": args.new,
            "epochs": args.epochs,
        },
        "left_out_handled_before": {s: statuses.count(s) for s in sorted(set(statuses))},
        "left_out_model_accuracy_before": before_model,
        "left_out_model_accuracy_after": after_model,
        "left_out_auto_answered_after": after_api,
        "gate": {
            "decision": report["decision"],
            "candidate_accuracy": report["candidate"],
            "active_accuracy": report["active"],
            "held_out": report["held_out"],
            "reasons": report["reasons"],
        },
        "job": {"status": finished["status"], "wall_s": round(job_s, 1)},
        "first_training_s": round(first_train_s, 1),
        "traffic_during_job": {
            "requests": len(latencies),
            "failed": failures,
            "p50_ms": round(statistics.median(latencies), 1),
            "max_ms": round(max(latencies), 1),
        },
        "machine": {"cpu": platform.processor() or platform.machine(), "threads": 2},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-intent", type=int, default=50)
    parser.add_argument("--eval-per-intent", type=int, default=10)
    parser.add_argument("--asked", type=int, default=30)
    parser.add_argument("--new", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=8)
    # Ten held-out questions per known intent: allow two more misses than the active model.
    parser.add_argument("--max-intent-drop", type=float, default=0.2)
    args = parser.parse_args()
    torch.set_num_threads(2)
    result = asyncio.run(run(args))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "learning.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    mean = lambda d: sum(d.values()) / len(d)  # noqa: E731
    gate, traffic = result["gate"], result["traffic_during_job"]
    before, after = (
        result["left_out_model_accuracy_before"],
        result["left_out_model_accuracy_after"],
    )
    rows = [
        ("left-out questions, bot alone (before)", str(result["left_out_handled_before"])),
        (
            "new wordings right+confident, before",
            f"{mean(result['left_out_model_accuracy_before']):.3f}",
        ),
        (
            "new wordings right+confident, candidate",
            f"{mean(result['left_out_model_accuracy_after']):.3f}",
        ),
        (
            "new wordings auto-answered, after",
            f"{mean(result['left_out_auto_answered_after']):.3f}",
        ),
        (
            "held-out accuracy active -> candidate",
            f"{gate['active_accuracy']:.4f} -> {gate['candidate_accuracy']:.4f}",
        ),
        ("gate", result["gate"]["decision"]),
        ("retrain job wall time", f"{result['job']['wall_s']} s"),
        (
            "requests during job (failed)",
            f"{traffic['requests']} ({traffic['failed']})",
        ),
        (
            "request p50 / max during job",
            f"{traffic['p50_ms']} / {traffic['max_ms']} ms",
        ),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    for intent, v in after.items():
        print(f"  {intent:<28} before {before[intent]:.3f}  after {v:.3f}")


if __name__ == "__main__":
    main()
