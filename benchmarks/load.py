"""Load benchmark: real HTTP against `deskbot serve` on 127.0.0.1 with the sample data.

N simulated customers each hold one conversation and send messages one after another (the
next as soon as the reply arrives), for a fixed time. Each configuration starts a fresh server
process on a copy of a prepared home. Reported: messages/s and reply latency p50/p99, for
policy `auto` with verbatim retrieved answers (generation off), with batching on and off, and
optionally with generation on.

    python benchmarks/load.py                      # N = 1, 16, 64; batching on/off
    python benchmarks/load.py --generation         # also generation on (slow: N = 1, 4)
    python benchmarks/load.py --database-url postgresql+asyncpg://postgres@127.0.0.1/test \
        --servers 2 --worker                       # scale-out figures (see README)

With ``--database-url``, each configuration gets a new database beside that URL's (created
through it, dropped afterwards), migrated, with the prepared home's index and intent versions
registered and active. ``--worker`` also runs ``deskbot worker`` (the job runner of a
scaled-out set-up; the servers never run jobs here).

Prints a table and writes benchmarks/results/load.json.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sample_questions() -> list[str]:
    with open(REPO / "examples" / "sample_pairs.csv", encoding="utf-8", newline="") as f:
        return [row["instruction"] for row in csv.DictReader(f) if row["intent"] != "human_agent"]


def prepare_home(base: Path, env: dict[str, str]) -> Path:
    """A home with the sample imported, the index built and a first intent model (cached)."""
    home = base / "prepared"
    if not (home / "READY").exists():
        shutil.rmtree(home, ignore_errors=True)
        subprocess.run(
            [PYTHON, "-m", "bot", "prepare"], env={**env, "DESKBOT_HOME": str(home)}, check=True
        )
        (home / "READY").write_text("ok")
    return home


async def wait_ready(url: str, proc: subprocess.Popen[bytes], within_s: float = 180) -> None:
    deadline = time.monotonic() + within_s
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}")
            try:
                async with http.get(url + "/readyz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.3)
    raise RuntimeError("server did not become ready")


async def customer(
    http: aiohttp.ClientSession,
    url: str,
    questions: list[str],
    stop_at: float,
    rng: random.Random,
    statuses: dict[str, int] | None = None,
) -> list[float]:
    latencies: list[float] = []
    conv: dict[str, Any] = {}
    while time.monotonic() < stop_at:
        if not conv:
            # A conversation handed to an agent gets no more bot replies: start another, so
            # every measured message runs the whole pipeline.
            async with http.post(url + "/api/v1/conversations", json={}) as r:
                conv = await r.json()
            auth = {"Authorization": f"Bearer {conv['token']}"}
        started = time.perf_counter()
        async with http.post(
            f"{url}/api/v1/conversations/{conv['id']}/messages",
            json={"text": rng.choice(questions)},
            headers=auth,
        ) as r:
            body = await r.json()
            if r.status != 200:
                raise RuntimeError(f"HTTP {r.status}: {body}")
        latencies.append((time.perf_counter() - started) * 1000)
        status = body["reply"]["status"]
        if statuses is not None:
            statuses[status] = statuses.get(status, 0) + 1
        if status == "handoff":
            conv = {}
    return latencies


async def drive(urls: list[str], customers: int, seconds: float, warmup: float) -> dict[str, Any]:
    questions = sample_questions()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        rng = random.Random(7)
        await asyncio.gather(
            *(
                customer(http, urls[i % len(urls)], questions, time.monotonic() + warmup, rng)
                for i in range(min(customers, 8))
            )
        )
        start = time.monotonic()
        statuses: dict[str, int] = {}
        results = await asyncio.gather(
            *(
                customer(
                    http,
                    urls[i % len(urls)],
                    questions,
                    start + seconds,
                    random.Random(i),
                    statuses,
                )
                for i in range(customers)
            )
        )
        elapsed = time.monotonic() - start
    lat = sorted(x for r in results for x in r)
    return {
        "customers": customers,
        "messages": len(lat),
        "seconds": round(elapsed, 2),
        "messages_per_s": round(len(lat) / elapsed, 1),
        "p50_ms": round(statistics.quantiles(lat, n=100)[49], 1) if len(lat) > 2 else None,
        "p99_ms": round(statistics.quantiles(lat, n=100)[98], 1) if len(lat) > 2 else None,
        "statuses": statuses,
    }


def start_servers(
    home: Path, env: dict[str, str], n: int, extra: dict[str, str], repo: Path = REPO
) -> tuple[list[subprocess.Popen[bytes]], list[str]]:
    """``n`` servers on ``home``, running the code of the checkout at ``repo``."""
    procs, urls = [], []
    for _ in range(n):
        port = free_port()
        proc_env = {
            **env,
            "DESKBOT_HOME": str(home.resolve()),
            "DESKBOT_SERVER__PORT": str(port),
            **extra,
        }
        if repo != REPO:
            proc_env["PYTHONPATH"] = str(repo)
        procs.append(
            subprocess.Popen(
                [PYTHON, "-m", "bot", "serve"],
                cwd=repo,
                env=proc_env,
                stdout=subprocess.DEVNULL,
                stderr=open(home / f"server-{port}.log", "wb"),
            )
        )
        urls.append(f"http://127.0.0.1:{port}")
    return procs, urls


def start_worker(home: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [PYTHON, "-m", "bot", "worker"],
        cwd=REPO,
        env={**env, "DESKBOT_HOME": str(home.resolve())},
        stdout=subprocess.DEVNULL,
        stderr=open(home / "worker.log", "wb"),
    )


async def fresh_database(url: str, prepared: Path) -> str:
    """A new, migrated database beside ``url``'s, with ``prepared``'s active model versions."""
    import asyncpg

    sys.path.insert(0, str(REPO))
    from bot.storage.db import Database
    from bot.storage.model_versions import (
        activate_model_version,
        active_model_version,
        register_model_version,
    )

    name = f"deskbot_bench_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    new_url = url.rsplit("/", 1)[0] + "/" + name
    source = Database(f"sqlite+aiosqlite:///{prepared / 'deskbot.db'}")
    target = Database(new_url)
    try:
        await target.upgrade()
        for kind in ("index", "intent"):
            row = await active_model_version(source, kind)
            if row is not None:
                await register_model_version(target, kind, row.version, row.path, row.metrics)
                await activate_model_version(target, kind, row.version)
    finally:
        await source.dispose()
        await target.dispose()
    return new_url


async def drop_database(admin_url: str, url: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
    finally:
        await conn.close()


def server_env() -> dict[str, str]:
    """The measured setup: offline, policy auto, rate limits out of the way, no jobs."""
    return {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "DESKBOT_SERVER__POLICY": "auto",
        "DESKBOT_SERVER__RATE_LIMIT_PER_CONVERSATION": "1000",
        "DESKBOT_SERVER__RATE_LIMIT_BURST": "1000",
        "DESKBOT_SERVER__RATE_LIMIT_PER_IP": "100000",
        "DESKBOT_SERVER__RUN_JOBS": "false",
    }


def stop(procs: list[subprocess.Popen[bytes]]) -> None:
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()


async def run_config(
    name: str,
    prepared: Path,
    work: Path,
    env: dict[str, str],
    extra: dict[str, str],
    customers: list[int],
    seconds: float,
    servers: int,
    worker: bool = False,
) -> list[dict[str, Any]]:
    home = work / name
    shutil.rmtree(home, ignore_errors=True)
    shutil.copytree(prepared, home)
    admin_url = env.get("DESKBOT_DATABASE_URL", "")
    if admin_url:
        env = {**env, "DESKBOT_DATABASE_URL": await fresh_database(admin_url, prepared)}
    procs, urls = start_servers(home, env, servers, extra)
    if worker:
        procs.append(start_worker(home, {**env, **extra}))
    rows = []
    try:
        for url in urls:
            await wait_ready(url, procs[0])
        for n in customers:
            row = await drive(urls, n, seconds, warmup=2.0)
            row["config"] = name
            row["servers"] = servers
            row["worker"] = worker
            rows.append(row)
            print(
                f"{name:<28} {n:>4} customers  {row['messages_per_s']:>7.1f} msg/s  "
                f"p50 {row['p50_ms']:>7.1f} ms  p99 {row['p99_ms']:>7.1f} ms",
                flush=True,
            )
    finally:
        stop(procs)
        if admin_url:
            await drop_database(admin_url, env["DESKBOT_DATABASE_URL"])
    return rows


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", default="1,16,64")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--generation", action="store_true", help="also measure generation on")
    parser.add_argument("--servers", type=int, default=1)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--worker", action="store_true", help="also run `deskbot worker`")
    parser.add_argument("--work", type=Path, default=REPO / "var" / "bench-load")
    parser.add_argument("--out", type=Path, default=RESULTS / "load.json")
    args = parser.parse_args()
    customers = [int(x) for x in args.customers.split(",")]

    env = server_env()
    if args.database_url:
        env["DESKBOT_DATABASE_URL"] = args.database_url
    args.work.mkdir(parents=True, exist_ok=True)
    prepared = prepare_home(
        args.work, {k: v for k, v in env.items() if k != "DESKBOT_DATABASE_URL"}
    )

    rows: list[dict[str, Any]] = []
    off = {"DESKBOT_GENERATION__BACKEND": "off"}
    label = (
        f"{args.servers} server(s)"
        + (", worker" if args.worker else "")
        + (", postgresql" if args.database_url else ", sqlite")
        + (", redis" if os.environ.get("DESKBOT_REDIS_URL") else "")
    )
    rows += await run_config(
        "generation off, batched",
        prepared,
        args.work,
        env,
        off,
        customers,
        args.seconds,
        args.servers,
        args.worker,
    )
    rows += await run_config(
        "generation off, unbatched",
        prepared,
        args.work,
        env,
        {**off, "DESKBOT_SERVER__BATCHING": "false"},
        customers,
        args.seconds,
        args.servers,
        args.worker,
    )
    if args.generation:
        rows += await run_config(
            "generation on, batched",
            prepared,
            args.work,
            env,
            {"DESKBOT_GENERATION__BACKEND": "local"},
            [c for c in (1, 4) if c <= max(customers)] or [1],
            max(args.seconds, 30),
            args.servers,
            args.worker,
        )
    by = {(r["config"], r["customers"]): r for r in rows}
    top = max(customers)
    ratio = None
    if ("generation off, unbatched", top) in by:
        ratio = round(
            by[("generation off, batched", top)]["messages_per_s"]
            / by[("generation off, unbatched", top)]["messages_per_s"],
            2,
        )
    print(f"\n{label}: batching speed-up at {top} customers: {ratio}x")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {
                "setup": label,
                "seconds_per_point": args.seconds,
                "cpu_count": os.cpu_count(),
                "rows": rows,
                "batching_speedup_at_max": ratio,
            },
            indent=2,
        )
    )
    print(f"wrote {args.out}")


if __name__ == "__main__":
    asyncio.run(main())
