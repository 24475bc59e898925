"""Connector benchmark: webhook acknowledgement latency and outbox delivery throughput.

    flock /tmp/deskbot-cpu.lock .venv/bin/python benchmarks/connector_delivery.py [--messages 1000]

A real aiohttp server serves the webhook app on 127.0.0.1; signed Slack ``event_callback``
requests (the payload from tests/connectors/payloads) are posted with 1 and 16 concurrent
senders. ``on_inbound`` does what the server's does before answering: in one SQLite (WAL)
transaction it stores the conversation and message (unique on the Slack id) and enqueues a
reply in the outbox. The delivery worker runs meanwhile and sends to a local fake
chat.postMessage; delivery throughput is measured on a backlog of ``--messages`` rows. Also
the cost of each signature check. Prints a table, writes benchmarks/results/connector_delivery.json.
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

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlmodel import func, select

from bot.storage.db import Database
from bot.storage.deliveries import OutboxTable, enqueue, outbound_for
from bot.storage.messages import get_or_create_conversation, store_message
from bot.storage.models import Outbox, OutboxStatus, Role
from connectors.base import Connector, InboundMessage
from connectors.config import DeliverySettings
from connectors.connector_set import ConnectorSet
from connectors.http import make_webhook_app
from connectors.meta.common import meta_signature
from connectors.outbox import DeliveryWorker
from connectors.registration import build_channel_config
from connectors.slack.signature import slack_signature, verify_slack
from connectors.twilio.signature import twilio_signature, verify_twilio
from connectors.webhook.signature import sign, verify_signature

ROOT = Path(__file__).resolve().parents[1]
PAYLOAD = ROOT / "tests/connectors/payloads/slack/message_im.json"
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def make_on_inbound(db: Database, worker: DeliveryWorker) -> Any:
    async def on_inbound(connector: Connector, msg: InboundMessage) -> bool:
        async with db.session() as s:
            conv, _ = await get_or_create_conversation(s, msg.channel, msg.external_conversation_id)
            _, created = await store_message(
                s,
                conv.id,
                msg.channel,
                Role.CUSTOMER,
                msg.text,
                external_id=msg.external_message_id,
            )
            if not created:
                return False
            await enqueue(
                s,
                conv,
                None,
                outbound_for(conv, "echo: " + msg.text, reply_to=msg.external_message_id),
            )
        worker.wake()
        return True

    return on_inbound


def signed_event(i: int) -> tuple[bytes, dict[str, str]]:
    data = json.loads(PAYLOAD.read_text())
    data["event"]["ts"] = f"{1700000000 + i}.000100"
    data["event"]["channel"] = f"D{i % 50:08d}"  # 50 conversations
    body = json.dumps(data).encode()
    ts = int(time.time())
    return body, {
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": slack_signature(SECRET, ts, body),
        "Content-Type": "application/json",
    }


async def post_all(url: str, start: int, n: int, concurrency: int) -> list[float]:
    latencies: list[float] = []
    queue = list(range(start, start + n))
    async with aiohttp.ClientSession() as http:

        async def sender() -> None:
            while queue:
                i = queue.pop()
                body, headers = signed_event(i)
                t0 = time.perf_counter()
                async with http.post(url, data=body, headers=headers) as resp:
                    await resp.read()
                    assert resp.status == 200, resp.status
                latencies.append(time.perf_counter() - t0)

        await asyncio.gather(*(sender() for _ in range(concurrency)))
    return latencies


async def count_sent(db: Database) -> int:
    async with db.session() as s:
        return (
            await s.exec(
                select(func.count()).select_from(Outbox).where(Outbox.status == OutboxStatus.SENT)
            )
        ).one()


async def wait_sent(db: Database, n: int) -> None:
    while await count_sent(db) < n:  # noqa: ASYNC110 - the database is what we wait on
        await asyncio.sleep(0.01)


def time_call(fn: Any, repeat: int = 2000) -> float:
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    return (time.perf_counter() - t0) / repeat * 1e6


async def run(messages: int) -> dict[str, Any]:
    sent_to_platform = 0

    async def post_message(request: web.Request) -> web.Response:
        nonlocal sent_to_platform
        data = await request.json()
        sent_to_platform += 1
        return web.json_response({"ok": True, "channel": data["channel"], "ts": "1.2"})

    fake = web.Application()
    fake.router.add_post("/api/chat.postMessage", post_message)
    fake_server = TestServer(fake, host="127.0.0.1")
    await fake_server.start_server()

    tmp = tempfile.mkdtemp()
    db = Database(f"sqlite+aiosqlite:///{tmp}/bench.db")
    await db.upgrade()
    config = build_channel_config(
        "slack",
        {
            "signing_secret": SECRET,
            "bot_token": "xoxb-b-0123456789abcdef",
            "api_base": str(fake_server.make_url("/api")),
        },
    )
    connectors = ConnectorSet.from_configs({"main": ("slack", config)})
    settings = DeliverySettings(poll_interval_s=0.05, batch_size=50)
    worker = DeliveryWorker(OutboxTable(db), connectors, settings)
    app = web.Application()
    app.add_subapp("/webhooks/", make_webhook_app(connectors, make_on_inbound(db, worker)))
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    url = str(server.make_url("/webhooks/slack/main"))
    results: dict[str, Any] = {}

    await worker.start()
    await post_all(url, 10_000_000, 50, 4)  # warm-up
    for concurrency in (1, 16):
        n = min(messages, 500)
        base = concurrency * 1_000_000
        t0 = time.perf_counter()
        lat = await post_all(url, base, n, concurrency)
        wall = time.perf_counter() - t0
        results[f"ack_c{concurrency}"] = {
            "requests": n,
            "p50_ms": percentile(lat, 0.5) * 1e3,
            "p95_ms": percentile(lat, 0.95) * 1e3,
            "p99_ms": percentile(lat, 0.99) * 1e3,
            "mean_ms": statistics.fmean(lat) * 1e3,
            "requests_per_s": n / wall,
        }
    # Let the worker drain what the latency runs queued, then time a backlog.
    await wait_sent(db, 50 + 2 * min(messages, 500))
    await worker.stop()
    already = await count_sent(db)
    await post_all(url, 20_000_000, messages, 16)
    worker = DeliveryWorker(OutboxTable(db), connectors, settings)
    t0 = time.perf_counter()
    await worker.start()
    await wait_sent(db, already + messages)
    wall = time.perf_counter() - t0
    await worker.stop()
    results["delivery_backlog"] = {"rows": messages, "seconds": wall, "rows_per_s": messages / wall}
    results["platform_sends"] = sent_to_platform
    results["duplicate_sends"] = sent_to_platform - await count_sent(db)

    body, headers = signed_event(1)
    params = [("Body", "hello"), ("From", "+14155552671"), ("MessageSid", "SM1")]
    tw = twilio_signature(SECRET, "https://x.example/webhooks/twilio/sms", params)
    wh = sign(SECRET, body)
    results["verify_us"] = {
        "slack": time_call(lambda: verify_slack(SECRET, headers, body)),
        "meta": time_call(lambda: meta_signature(SECRET, body)),
        "twilio": time_call(
            lambda: verify_twilio(SECRET, "https://x.example/webhooks/twilio/sms", params, tw)
        ),
        "webhook": time_call(lambda: verify_signature(SECRET, wh, body, window_s=300)),
    }
    await server.close()
    await fake_server.close()
    await connectors.close()
    await db.dispose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    args = parser.parse_args()
    results = asyncio.run(run(args.messages))
    print(f"{'measure':<28}{'value':>12}")
    for key in ("ack_c1", "ack_c16"):
        r = results[key]
        print(f"{key + ' p50 / p95 ms':<28}{r['p50_ms']:>6.2f} /{r['p95_ms']:>5.2f}")
        print(f"{key + ' requests/s':<28}{r['requests_per_s']:>12.0f}")
    d = results["delivery_backlog"]
    print(
        f"{'delivery rows/s':<28}{d['rows_per_s']:>12.0f}   ({d['rows']} rows, {d['seconds']:.2f}s)"
    )
    print(f"{'duplicate sends':<28}{results['duplicate_sends']:>12d}")
    for name, us in results["verify_us"].items():
        print(f"{'verify ' + name + ' us':<28}{us:>12.1f}")
    results["machine"] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }
    out = ROOT / "benchmarks/results/connector_delivery.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
