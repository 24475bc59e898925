"""Where a server's CPU goes under load: CPU milliseconds per message, per thread.

Starts one `deskbot serve` on a copy of the load benchmark's prepared home (run
benchmarks/load.py once first), drives N customers for a fixed time as load.py does, and reads
the server's per-thread CPU time from /proc before and after. CPU time per message does not
depend on what else the shared cores run, so it compares changes more steadily than msg/s.

    flock /tmp/deskbot-cpu.lock .venv/bin/python benchmarks/load_cpu.py --customers 64 \\
        [--set DESKBOT_SERVER__PARALLEL_ENCODERS=false ...]

Prints one JSON row and writes benchmarks/results/load_cpu.json. Linux only (/proc).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import load  # the load benchmark's server and customer helpers

TICK = os.sysconf("SC_CLK_TCK")


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds per thread id ("main" for the main thread)."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out["main" if tid == str(pid) else tid] = (int(fields[11]) + int(fields[12])) / TICK
    return out


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=12.0)
    parser.add_argument("--set", action="append", default=[], help="server env KEY=VALUE")
    parser.add_argument("--work", type=Path, default=load.REPO / "var" / "bench-load")
    parser.add_argument("--out", type=Path, default=load.RESULTS / "load_cpu.json")
    args = parser.parse_args()
    prepared = args.work / "prepared"
    if not (prepared / "READY").exists():
        sys.exit(f"no prepared home at {prepared}: run benchmarks/load.py once first")
    extra = dict(item.split("=", 1) for item in args.set)
    env = {**load.server_env(), "DESKBOT_GENERATION__BACKEND": "off"}
    home = args.work / "cpu"
    shutil.rmtree(home, ignore_errors=True)
    shutil.copytree(prepared, home)
    procs, urls = load.start_servers(home, env, 1, extra)
    try:
        await load.wait_ready(urls[0], procs[0])
        await load.drive(urls, min(args.customers, 8), 3, 1)  # warm up
        pid = procs[0].pid
        before, client_before = thread_cpu(pid), own_cpu()
        row = await load.drive(urls, args.customers, args.seconds, 0.5)
        after, client_after = thread_cpu(pid), own_cpu()
    finally:
        load.stop(procs)
    n = row["messages"]
    per_thread = {
        tid: round((after[tid] - before.get(tid, 0.0)) * 1000 / n, 2)
        for tid in after
        if after[tid] - before.get(tid, 0.0) > 0.05
    }
    row.update(
        settings=extra,
        server_cpu_ms_per_msg=round(sum(per_thread.values()), 2),
        server_threads_cpu_ms_per_msg=dict(sorted(per_thread.items(), key=lambda kv: -kv[1])),
        load_generator_cpu_ms_per_msg=round((client_after - client_before) * 1000 / n, 2),
    )
    print(json.dumps(row))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(row, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
