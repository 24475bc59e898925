"""Hostile input benchmark: what each message of the hostile corpus costs a running server.

Starts one `deskbot serve` on a copy of a home that `deskbot prepare` made (the sample data
imported and indexed, and a first intent model unless --no-intent), with generation off and
policy auto: the reply path of issue #20, where the best retrieved answer is filled from the
customer's text. Then, for each
text of tests/bot/generation/hostile_corpus.py and a plain question for comparison:

1. CPU: the message is sent alone, in a new conversation; the server's CPU time (all its
   threads, from /proc/<pid>/task/*/schedstat, in nanoseconds) is read before the request
   and after the reply. "loop ms" is the main thread's share: the event loop's own work.
2. Liveness: the message is sent again, into one conversation that holds the corpus so far
   (so the reply also reads a hostile history; a conversation handed off gets no more bot
   replies, so a new one starts after a handoff), while `/healthz` is asked every 5 ms; the
   slowest `/healthz` answer while it was in flight is reported.

    python benchmarks/hostile_input.py [--repeat 3] [--no-intent] [--baseline CHECKOUT]

``--baseline`` starts a second server running another checkout (say a worktree of the commit
before a change) on its own copy of the same home, and measures each text on both, one after
the other, so the two columns share the machine's moments of load.

Target (issue #20): no message costs more than 50 ms of CPU; `/healthz` stays under 100 ms.
Prints a table and writes benchmarks/results/hostile_input.json. Linux only (/proc).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import load  # the load benchmark's server helpers

from tests.bot.generation.hostile_corpus import CORPUS

PLAIN = "How can I cancel my order?"
CPU_TARGET_MS = 50.0
HEALTHZ_TARGET_MS = 100.0


def encoder_tokens() -> Any:
    """Tokens of a text up to the bundled encoder's own max_seq_length (the server reads at
    most ``max_query_tokens`` of them)."""
    from transformers import AutoTokenizer

    from bot.core.bundled import encoder_path

    tokenizer = AutoTokenizer.from_pretrained(str(encoder_path()))
    limit = 256  # all-MiniLM-L6-v2's max_seq_length
    return lambda text: min(len(tokenizer(text, verbose=False)["input_ids"]), limit)


def prepare_home(work: Path, env: dict[str, str], intent: bool) -> Path:
    """A prepared home (cached under ``work``), without the generator's first-run set-up."""
    home = work / ("prepared" if intent else "prepared-no-intent")
    if not (home / "READY").exists():
        shutil.rmtree(home, ignore_errors=True)
        args = [load.PYTHON, "-m", "bot", "prepare", *([] if intent else ["--no-intent"])]
        prepare_env = {**env, "DESKBOT_HOME": str(home), "DESKBOT_GENERATION__BACKEND": "off"}
        subprocess.run(args, env=prepare_env, check=True)
        (home / "READY").write_text("ok")
    return home


def server_cpu_ns(pid: int) -> tuple[int, int]:
    """CPU time so far of all the server's threads and of its main (event-loop) thread, in ns."""
    total = main = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                used = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # a thread that ended between the listing and the read
        total += used
        if tid == str(pid):
            main = used
    return total, main


async def new_conversation(http: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, str]]:
    async with http.post(url + "/api/v1/conversations", json={}) as r:
        body = await r.json()
    return body["id"], {"Authorization": f"Bearer {body['token']}"}


async def send(
    http: aiohttp.ClientSession, url: str, conv: int, auth: dict[str, str], text: str
) -> tuple[int, str]:
    async with http.post(
        f"{url}/api/v1/conversations/{conv}/messages", json={"text": text}, headers=auth
    ) as r:
        body = await r.json()
        status = body["reply"]["status"] if r.status == 200 else body["error"]["code"]
        return r.status, status


async def cpu_of(http: aiohttp.ClientSession, url: str, pid: int, text: str) -> dict[str, Any]:
    conv, auth = await new_conversation(http, url)
    await asyncio.sleep(0.05)  # let the conversation's own work settle
    before = server_cpu_ns(pid)
    started = time.perf_counter()
    http_status, outcome = await send(http, url, conv, auth, text)
    wall_ms = (time.perf_counter() - started) * 1000
    after = server_cpu_ns(pid)
    return {
        "http": http_status,
        "outcome": outcome,
        "cpu_ms": (after[0] - before[0]) / 1e6,
        "loop_cpu_ms": (after[1] - before[1]) / 1e6,
        "wall_ms": wall_ms,
    }


async def poll_healthz(http: aiohttp.ClientSession, url: str, until: Any) -> list[float]:
    """Milliseconds each /healthz took, asked every 5 ms until ``until()`` is true."""
    took: list[float] = []
    while not until():
        started = time.perf_counter()
        async with http.get(url + "/healthz") as r:
            await r.read()
        took.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(0.005)
    return took


async def healthz_during(
    http: aiohttp.ClientSession,
    url: str,
    pid: int,
    conv: int,
    auth: dict[str, str],
    text: str,
) -> dict[str, Any]:
    before = server_cpu_ns(pid)[1]
    task = asyncio.create_task(send(http, url, conv, auth, text))
    took = await poll_healthz(http, url, task.done)
    http_status, outcome = task.result()
    loop_ms = (server_cpu_ns(pid)[1] - before) / 1e6  # the polls' own handling included
    return {"http": http_status, "outcome": outcome, "healthz_ms": took, "loop_ms": loop_ms}


async def measure(servers: dict[str, tuple[str, int]], repeat: int) -> list[dict[str, Any]]:
    """Rows per text and server; ``servers`` maps a label to the server's URL and pid."""
    texts = {"plain-question": PLAIN, **CORPUS}
    tokens = encoder_tokens()
    rows = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
        history = {}
        for label, (url, pid) in servers.items():
            for _ in range(3):  # warm the models and caches on ordinary questions
                await cpu_of(http, url, pid, PLAIN)
            # What the shared machine alone does to /healthz: polled with nothing in flight.
            deadline = time.monotonic() + 3.0
            idle = await poll_healthz(http, url, lambda d=deadline: time.monotonic() > d)
            rows.append(
                {
                    "server": label,
                    "text": "(nothing in flight, 3 s)",
                    "healthz_polls": len(idle),
                    "healthz_max_ms": round(max(idle), 1),
                    "healthz_p99_ms": round(statistics.quantiles(idle, n=100)[98], 1),
                }
            )
            print(
                f"{label:<9} {'(nothing in flight, 3 s)':<24} {'':>71}"
                f" {max(idle):>10.1f} {len(idle):>6}"
            )
            history[label] = await new_conversation(http, url)
        for name, text in texts.items():
            for label, (url, pid) in servers.items():
                runs = [await cpu_of(http, url, pid, text) for _ in range(repeat)]
                conv, auth = history[label]
                live = await healthz_during(http, url, pid, conv, auth, text)
                if live["outcome"] == "handoff":
                    history[label] = await new_conversation(http, url)
                row = {
                    "server": label,
                    "text": name,
                    "chars": len(text),
                    "encoder_tokens": tokens(text),
                    "http": sorted({r["http"] for r in runs} | {live["http"]}),
                    "outcome": runs[0]["outcome"],
                    "outcome_in_history": live["outcome"],
                    "cpu_ms": round(statistics.median(r["cpu_ms"] for r in runs), 1),
                    "cpu_ms_max": round(max(r["cpu_ms"] for r in runs), 1),
                    "loop_cpu_ms": round(statistics.median(r["loop_cpu_ms"] for r in runs), 1),
                    "reply_ms": round(statistics.median(r["wall_ms"] for r in runs), 1),
                    "healthz_polls": len(live["healthz_ms"]),
                    "healthz_max_ms": round(max(live["healthz_ms"]), 1),
                    "loop_cpu_ms_in_history": round(live["loop_ms"], 1),
                }
                rows.append(row)
                print(
                    f"{label:<9} {name:<24} {row['chars']:>5} {row['encoder_tokens']:>6}"
                    f" {row['outcome']:<15} {row['cpu_ms']:>8.1f}"
                    f" {row['cpu_ms_max']:>8.1f} {row['loop_cpu_ms']:>8.1f}"
                    f" {row['reply_ms']:>8.1f} {row['healthz_max_ms']:>10.1f}"
                    f" {row['healthz_polls']:>6}",
                    flush=True,
                )
    return rows


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Worst CPU and /healthz of one server's rows against the targets."""
    measured = [r for r in rows if "cpu_ms" in r]
    worst_cpu = max(measured, key=lambda r: r["cpu_ms_max"])
    worst_healthz = max(measured, key=lambda r: r["healthz_max_ms"])
    idle = next(r for r in rows if "cpu_ms" not in r)
    return {
        "worst_cpu_ms": worst_cpu["cpu_ms_max"],
        "worst_cpu_text": worst_cpu["text"],
        "worst_healthz_ms": worst_healthz["healthz_max_ms"],
        "worst_healthz_text": worst_healthz["text"],
        "cpu_target_met": worst_cpu["cpu_ms_max"] <= CPU_TARGET_MS,
        "healthz_target_met": worst_healthz["healthz_max_ms"] < HEALTHZ_TARGET_MS,
        "healthz_max_ms_with_nothing_in_flight": idle["healthz_max_ms"],
        "server_errors": [r["text"] for r in measured if any(s >= 500 for s in r["http"])],
    }


def commit_of(repo: Path) -> str:
    """The checkout's commit, marked when its tracked files have changes."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True
        ).stdout.strip()

    return git("rev-parse", "--short", "HEAD") + (" (modified)" if git("status", "-suno") else "")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="CPU runs per text (median)")
    parser.add_argument(
        "--no-intent", action="store_true", help="no intent model: intent from retrieval"
    )
    parser.add_argument(
        "--baseline", type=Path, help="also measure a server running this other checkout"
    )
    parser.add_argument("--work", type=Path, default=load.REPO / "var" / "bench-hostile")
    parser.add_argument("--out", type=Path, default=load.RESULTS / "hostile_input.json")
    args = parser.parse_args()

    load_before = os.getloadavg()
    env = load.server_env()
    env.pop("DESKBOT_DATABASE_URL", None)
    args.work.mkdir(parents=True, exist_ok=True)
    prepared = prepare_home(args.work, env, intent=not args.no_intent)
    repos = {"this": load.REPO}
    if args.baseline is not None:
        repos["baseline"] = args.baseline.resolve()
    procs, servers = [], {}
    try:
        for label, repo in repos.items():
            home = args.work / ("hostile" if label == "this" else f"hostile-{label}")
            shutil.rmtree(home, ignore_errors=True)
            shutil.copytree(prepared, home)
            started, urls = load.start_servers(
                home, env, 1, {"DESKBOT_GENERATION__BACKEND": "off"}, repo=repo
            )
            procs += started
            servers[label] = (urls[0], started[0].pid)
            await load.wait_ready(urls[0], started[0])
        print(
            f"{'server':<9} {'text':<24} {'chars':>5} {'tokens':>6} {'outcome':<15}"
            f" {'cpu ms':>8} {'max':>8} {'loop ms':>8} {'reply ms':>8} {'healthz ms':>10}"
            f" {'polls':>6}"
        )
        rows = await measure(servers, args.repeat)
    finally:
        load.stop(procs)

    summaries = {label: summarise([r for r in rows if r["server"] == label]) for label in repos}
    for label, summary in summaries.items():
        print(
            f"\n{label} ({commit_of(repos[label])}): worst CPU {summary['worst_cpu_ms']} ms"
            f" ({summary['worst_cpu_text']}), target {CPU_TARGET_MS:.0f} ms; worst /healthz"
            f" {summary['worst_healthz_ms']} ms ({summary['worst_healthz_text']}), target"
            f" {HEALTHZ_TARGET_MS:.0f} ms"
        )
    result: dict[str, Any] = {
        "setup": "1 server, sqlite, policy auto, generation off"
        + (", no intent model" if args.no_intent else ", intent model (quick preset)"),
        "load_average_before_after": [load_before, os.getloadavg()],
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "repeat": args.repeat,
        "commit": commit_of(load.REPO),
        "summary": summaries["this"],
    }
    if args.baseline is not None:
        result["baseline"] = {
            "checkout": str(repos["baseline"]),
            "commit": commit_of(repos["baseline"]),
            "summary": summaries["baseline"],
        }
    result["rows"] = rows
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    asyncio.run(main())
