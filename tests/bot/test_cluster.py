"""Two `deskbot serve` processes and a `deskbot worker` on the real PostgreSQL and Redis.

The servers run no jobs (``server.run_jobs = false``). Server A does not poll the database for
model versions, so whatever it learns about an activation elsewhere comes through Redis; B polls
every second, which is how a missed event is caught up.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlmodel import func, select

from bot.auth import create_api_key
from bot.importer import import_file
from bot.jobs import enqueue
from bot.storage.db import Database
from bot.storage.models import ModelVersion, TrainingRun
from tests.bot.conftest import REDIS_URL
from tests.conftest import (
    POSTGRES_URL,
    REPO_ROOT,
    SHARED_DATA,
    UNDER_CI,
    _pg_admin,
    _postgres_database,
    build_index,
)

HUMAN_TEXT = "I need assistance to speak with an agent"  # labelled contact_human_agent
BITEXT = SHARED_DATA / "bitext" / "bitext_cs_train.csv.gz"
BITEXT_ROWS = 24_183


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cluster:
    db_url: str
    home: Path
    env: dict[str, str]
    prefix: str
    admin_key: str
    agent_key: str
    index_version: str
    urls: list[str] = field(default_factory=list)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, name: str, args: list[str], extra: dict[str, str]) -> None:
        log = (self.home / f"{name}.log").open("wb")
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "bot", *args],
            env={**self.env, **extra},
            stdout=subprocess.DEVNULL,
            stderr=log,
            cwd=REPO_ROOT,
        )

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n" + p.read_text(errors="replace")[-3000:]
            for p in sorted(self.home.glob("*.log"))
        )

    async def db(self) -> Database:
        return Database(self.db_url, pool_size=2)


async def _prepare(db_url: str, home: Path, embedder: Any) -> tuple[str, str, str]:
    db = Database(db_url)
    try:
        await import_file(db, REPO_ROOT / "examples" / "sample_pairs.csv")
        version = await build_index(home, db, embedder)
        return (
            await create_api_key(db, "ops", "admin"),
            await create_api_key(db, "ana", "agent"),
            version,
        )
    finally:
        await db.dispose()


async def _wait_ready(cluster: Cluster, within_s: float = 120) -> None:
    deadline = time.monotonic() + within_s
    async with aiohttp.ClientSession() as http:
        for url in cluster.urls:
            while True:
                for name, proc in cluster.procs.items():
                    if proc.poll() is not None:
                        raise RuntimeError(f"{name} exited early:\n{cluster.logs()}")
                try:
                    async with http.get(url + "/readyz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{url} not ready:\n{cluster.logs()}")
                await asyncio.sleep(0.3)


@pytest.fixture(scope="module")
def cluster(
    tmp_path_factory: pytest.TempPathFactory, embedder: Any, shared_data: Path
) -> Iterator[Cluster]:
    import uuid

    from tests.bot.conftest import _redis_or_skip

    asyncio.run(_redis_or_skip())
    try:
        name = asyncio.run(_postgres_database())
    except RuntimeError as exc:
        if UNDER_CI:
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    db_url = f"{POSTGRES_URL.rsplit('/', 1)[0]}/{name}"
    home = tmp_path_factory.mktemp("cluster-home")
    admin_key, agent_key, version = asyncio.run(_prepare(db_url, home, embedder))
    prefix = f"deskbot-test-{uuid.uuid4().hex[:10]}:"
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "DESKBOT_HOME": str(home),
        "DESKBOT_DATABASE_URL": db_url,
        "DESKBOT_REDIS_URL": REDIS_URL,
        "DESKBOT_SERVER__REDIS_PREFIX": prefix,
        "DESKBOT_SERVER__RUN_JOBS": "false",
        "DESKBOT_SERVER__JOB_LEASE_S": "4",
        "DESKBOT_SERVER__RATE_LIMIT_PER_CONVERSATION": "0.05",
        "DESKBOT_SERVER__RATE_LIMIT_BURST": "4",
        "DESKBOT_SERVER__SHUTDOWN_TIMEOUT_S": "5",
        "DESKBOT_GENERATION__BACKEND": "off",
        "DESKBOT_INTENT__HUMAN_LABEL": "contact_human_agent",
    }
    cluster = Cluster(db_url, home, env, prefix, admin_key, agent_key, version)
    for server, poll in (("a", "0"), ("b", "1")):
        port = _free_port()
        cluster.urls.append(f"http://127.0.0.1:{port}")
        cluster.start(
            f"server-{server}",
            ["serve", "--port", str(port)],
            {"DESKBOT_SERVER__MODEL_POLL_S": poll},
        )
    cluster.start("worker-1", ["worker", "--name", "worker-1", "--poll", "0.2"], {})
    try:
        asyncio.run(_wait_ready(cluster))
        yield cluster
    finally:
        for proc in cluster.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in cluster.procs.values():
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        asyncio.run(_drop_keys(prefix))


async def _drop_keys(prefix: str) -> None:
    import redis.asyncio as redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = [k async for k in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def _json(response: aiohttp.ClientResponse, status: int = 200) -> Any:
    body = await response.json()
    assert response.status == status, body
    return body


async def _start_conversation(http: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    async with http.post(url + "/api/v1/conversations") as r:
        body = await _json(r, 201)
    return body["id"], body["token"]


async def _versions(http: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with http.get(url + "/readyz") as r:
        return dict((await _json(r))["models"])


async def _eventually(check: Any, within_s: float, what: str) -> None:
    deadline = time.monotonic() + within_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within_s} s: {what}")
        await asyncio.sleep(0.2)


async def test_a_conversation_moves_between_processes(cluster: Cluster) -> None:
    a, b = cluster.urls
    questions = [
        "how can I cancel my order?",
        "I want to track my refund",
        "how do I change my shipping address?",
        "can I pay with PayPal?",
    ]
    async with aiohttp.ClientSession() as http:
        conv, token = await _start_conversation(http, a)
        for i, text in enumerate(questions):
            async with http.post(
                f"{(a, b)[i % 2]}/api/v1/conversations/{conv}/messages",
                json={"text": text},
                headers=_auth(token),
            ) as r:
                body = await _json(r)
            assert body["reply"]["status"] in ("sent", "pending_review", "handoff")
        async with http.get(f"{b}/api/v1/conversations/{conv}/messages", headers=_auth(token)) as r:
            stored = (await _json(r))["messages"]
        assert [m["text"] for m in stored if m["role"] == "customer"] == questions
        # The burst of 4 was spent across both processes: the fifth is refused on either.
        async with http.post(
            f"{a}/api/v1/conversations/{conv}/messages",
            json={"text": "one more"},
            headers=_auth(token),
        ) as r:
            assert r.status == 429, await r.text()

        # An idempotency key retried against the other process is the same message.
        conv2, token2 = await _start_conversation(http, b)
        sent = []
        for url in (a, b):
            async with http.post(
                f"{url}/api/v1/conversations/{conv2}/messages",
                json={"text": "where is my order?"},
                headers={**_auth(token2), "Idempotency-Key": "retry-1"},
            ) as r:
                sent.append(await _json(r))
        assert sent[0]["message"]["id"] == sent[1]["message"]["id"]
        assert sent[1]["duplicate"] is True


async def _agents_subscribers(cluster: Cluster) -> int:
    import redis.asyncio as redis

    channel = f"{cluster.prefix}events:agents"
    client = redis.Redis.from_url(REDIS_URL)
    try:
        return int(dict(await client.pubsub_numsub(channel))[channel.encode()])
    finally:
        await client.aclose()


async def test_agent_on_a_sees_a_handoff_raised_on_b(cluster: Cluster) -> None:
    a, b = cluster.urls
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        async with http.get(a + "/api/v1/agent/events", headers=_auth(cluster.agent_key)) as stream:
            assert stream.status == 200

            async def subscribed() -> bool:
                return await _agents_subscribers(cluster) >= 1

            await _eventually(subscribed, 10, "server A subscribed to the agents topic")
            conv, token = await _start_conversation(http, b)
            async with http.post(
                f"{b}/api/v1/conversations/{conv}/messages",
                json={"text": HUMAN_TEXT},
                headers=_auth(token),
            ) as r:
                assert (await _json(r))["reply"]["status"] == "handoff"

            async def handoff_seen() -> None:
                event = None
                async for raw in stream.content:
                    line = raw.decode().strip()
                    if line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: ") and event == "queue":
                        data = json.loads(line[6:])
                        if data == {"reason": "handoff", "conversation_id": conv}:
                            return

            await asyncio.wait_for(handoff_seen(), 15)


async def test_job_runs_once_in_the_worker_and_promotion_reaches_both(cluster: Cluster) -> None:
    a, b = cluster.urls
    admin = _auth(cluster.admin_key)
    old = cluster.index_version
    async with aiohttp.ClientSession() as http:
        assert (await _versions(http, a))["index"] == old
        async with http.post(
            b + "/api/v1/admin/training-runs", json={"kind": "index"}, headers=admin
        ) as r:
            run_id = (await _json(r, 202))["id"]

        async def finished() -> bool:
            async with http.get(f"{a}/api/v1/admin/training-runs/{run_id}", headers=admin) as r:
                return (await _json(r))["status"] not in ("queued", "running")

        await _eventually(finished, 90, f"index job {run_id} finished")
        db = await cluster.db()
        try:
            async with db.session() as s:
                run = await s.get(TrainingRun, run_id)
                builds = (
                    await s.exec(
                        select(func.count()).where(ModelVersion.kind == "index")  # type: ignore[arg-type]
                    )
                ).one()
        finally:
            await db.dispose()
        assert run is not None and run.status == "succeeded", (run, cluster.logs())
        assert run.worker == "worker-1"
        assert builds == 2  # the sample's index and exactly one build by the job
        new = run.result["version"]
        assert new != old

        async def both_serve(version: str) -> bool:
            got = [(await _versions(http, url))["index"] for url in (a, b)]
            return got == [version, version]

        # A does not poll: the worker's announcement on Redis made it load the new index.
        await _eventually(lambda: both_serve(new), 20, f"both processes serve index {new}")

        # Promotion (here a roll-back) through B's admin API reaches A through Redis.
        async with http.post(f"{b}/api/v1/admin/models/index/{old}/activate", headers=admin) as r:
            await _json(r)
        await _eventually(lambda: both_serve(old), 20, f"both processes serve index {old}")

        # Activated from the command line, nothing is announced: B finds it by polling.
        cli = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "models",
            "activate",
            "index",
            new,
            env=cluster.env,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, err = await cli.communicate()
        assert cli.returncode == 0, err.decode()

        async def b_caught_up() -> bool:
            return (await _versions(http, b))["index"] == new

        await _eventually(b_caught_up, 20, "B caught up with a version activated elsewhere")


async def _run_row(cluster: Cluster, run_id: int) -> TrainingRun:
    db = await cluster.db()
    try:
        async with db.session() as s:
            run = await s.get(TrainingRun, run_id)
    finally:
        await db.dispose()
    assert run is not None
    return run


async def test_a_killed_workers_job_is_claimed_again_and_finished(
    shared_data: Path, cluster: Cluster
) -> None:
    db = await cluster.db()
    try:
        run_id = (await enqueue(db, "import", {"path": str(BITEXT)})).id
    finally:
        await db.dispose()
    assert run_id is not None

    async def running() -> bool:
        row = await _run_row(cluster, run_id)
        return row.status == "running" and row.worker == "worker-1"

    await _eventually(running, 20, "worker-1 took the import")
    await asyncio.sleep(1.5)  # the import is under way (it takes several seconds)
    worker = cluster.procs["worker-1"]
    worker.send_signal(signal.SIGKILL)
    worker.wait(10)
    row = await _run_row(cluster, run_id)
    assert row.status == "running" and row.finished_at is None  # killed mid-job

    cluster.start("worker-2", ["worker", "--name", "worker-2", "--poll", "0.2"], {})

    async def done() -> bool:
        return (await _run_row(cluster, run_id)).status not in ("queued", "running")

    await _eventually(done, 90, f"import {run_id} finished after the worker died")
    row = await _run_row(cluster, run_id)
    assert row.status == "succeeded", (row, cluster.logs())
    assert row.worker == "worker-2"
    # Whatever the first attempt committed is skipped, the rest added: every row once.
    assert row.result["pairs_added"] + row.result["duplicates_skipped"] == BITEXT_ROWS


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="reads /proc (Linux)")
async def test_serve_workers_forks_processes_sharing_one_port(cluster: Cluster) -> None:
    port = _free_port()
    cluster.start(
        "serve-workers",
        ["serve", "--port", str(port), "--workers", "2"],
        {"DESKBOT_SERVER__MODEL_POLL_S": "0"},
    )
    parent = cluster.procs["serve-workers"]
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as http:

        async def both_ready() -> bool:
            if parent.poll() is not None:
                raise AssertionError(f"serve --workers exited:\n{cluster.logs()}")
            try:
                async with http.get(url + "/readyz") as r:
                    if r.status != 200:
                        return False
            except aiohttp.ClientError:
                return False
            # Each child listens on its own SO_REUSEPORT socket once its models are loaded.
            listening = Path("/proc/net/tcp").read_text().count(f":{port:04X} 00000000:0000 0A")
            return listening == 2

        await _eventually(both_ready, 120, "two processes listening on one port")
        assert len(_children(parent.pid)) == 2
    parent.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(parent.wait, 30) == 0  # every child stopped cleanly


async def test_a_key_revoked_on_a_is_refused_at_once_on_both(cluster: Cluster) -> None:
    a, b = cluster.urls
    admin = _auth(cluster.admin_key)
    async with aiohttp.ClientSession() as http:
        async with http.post(
            a + "/api/v1/admin/api-keys", json={"name": "eve", "role": "agent"}, headers=admin
        ) as r:
            made = await _json(r, 201)
        eve = _auth(made["key"])
        for url in (a, b):
            async with http.get(url + "/api/v1/agent/me", headers=eve) as r:
                assert (await _json(r))["name"] == "eve"
        async with http.post(
            f"{b}/api/v1/admin/api-keys/{made['api_key']['id']}/revoke", headers=admin
        ) as r:
            await _json(r)
        # No waiting: the very next request on either process is refused.
        for url in (a, b):
            async with http.get(url + "/api/v1/agent/me", headers=eve) as r:
                assert (await _json(r, 401))["error"]["message"] == "unknown or revoked API key"


async def test_a_pair_erased_through_a_leaves_bs_index_at_once(cluster: Cluster) -> None:
    from bot.storage.models import Conversation, KnowledgePair, Message

    a, b = cluster.urls
    question = "how do I get a refund for my order?"
    db = await cluster.db()

    async def sources_on_b(http: aiohttp.ClientSession) -> tuple[int, list[dict[str, Any]]]:
        conv, token = await _start_conversation(http, b)
        async with http.post(
            f"{b}/api/v1/conversations/{conv}/messages",
            json={"text": question},
            headers=_auth(token),
        ) as r:
            message_id = (await _json(r))["message"]["id"]
        async with db.session() as s:
            row = await s.get(Message, message_id)
        assert row is not None
        return message_id, list(row.details.get("sources", []))

    try:
        async with aiohttp.ClientSession() as http:
            first, sources = await sources_on_b(http)
            top = sources[0]["pair_id"]
            # As if the top pair had been learned from one customer's conversation.
            async with db.session() as s:
                conv = Conversation(channel="widget")
                s.add(conv)
                await s.flush()
                msg = Message(conversation_id=conv.id, channel="widget", role="bot", text="x")
                s.add(msg)
                await s.flush()
                pair = await s.get(KnowledgePair, top)
                assert pair is not None
                pair.source_ref = f"message:{msg.id}"
                s.add(pair)
            async with http.post(
                a + "/api/v1/admin/privacy/erase",
                json={"conversation_id": conv.id},
                headers=_auth(cluster.admin_key),
            ) as r:
                report = await _json(r)
            assert report["knowledge_pair_ids"] == [top]
            assert report["index_pairs_masked"] == 1  # in A's own index

            async def gone_on_b() -> bool:
                _, now = await sources_on_b(http)
                return top not in {x["pair_id"] for x in now}

            await _eventually(gone_on_b, 10, "B stopped returning the erased pair")
            async with db.session() as s:
                kept = await s.get(Message, first)
            assert kept is not None
            entry = next(x for x in kept.details["sources"] if x["pair_id"] == top)
            assert entry["question"] == entry["answer"] == "[erased]"
    finally:
        await db.dispose()
