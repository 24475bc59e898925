"""Where llama.cpp's time goes: prompt processing and one decode step at 1, 2, 4 and 8 sequences.

Run under the CPU lock:  flock /tmp/deskbot-cpu.lock .venv/bin/python \
    benchmarks/generation_steps.py [--adapter DIR] [--flash-attention auto|on|off|both]

The engine is driven directly (no event loop, no scheduler), so the figures are the model's
own cost on this machine: prompt tokens/s for one 512-token prompt computed from scratch, the
time to process the 8 benchmark prompts (system policy reused, as the server does), and the
time of one decode step with 1, 2, 4 and 8 sequences, each over its own benchmark prompt.
``benchmarks/generation.py``'s "8 vs single" ratio is bounded by these: at 8 concurrent, every
reply pays its prompt and shares steps that cost more than one sequence's.
Prints a table and writes benchmarks/results/generation_steps.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# benchmarks.generation sets the offline environment before anything loads a model.
from benchmarks.generation import sample_hits, settings_for  # noqa: E402
from bot.generation import ReplyRequest, load_generator  # noqa: E402
from bot.generation.scheduler import Job  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "generation_steps.json"
STEPS = 64  # decode steps timed per batch size


def measure(model: str, flash_attention: str) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        s = settings_for(
            Path(tmp), "llama_cpp", grounding_embedder=False, flash_attention=flash_attention
        )
        generator = load_generator(s, model)
        try:
            return _measure(generator)
        finally:
            asyncio.run(generator.close())


def _measure(generator) -> dict[str, object]:  # type: ignore[no-untyped-def]
    engine = generator.engine
    engine.stop_ids = frozenset()  # every job decodes exactly what it is asked for
    requests = [
        ReplyRequest(message=f"{hit.question} My order is ORD-{5550 + i}.", hits=(hit,))
        for i, hit in enumerate(sample_hits(8))
    ]
    prompts = [generator.prompts.build(r, max_new_tokens=STEPS + 1).ids for r in requests]

    def run(batch: list[list[int]], new_tokens: int) -> tuple[float, list[Job]]:
        jobs = [Job(p, new_tokens, generator.tokenizer) for p in batch]
        started = time.perf_counter()
        engine.run(jobs, lambda _: [])
        return time.perf_counter() - started, jobs

    run([prompts[0]], 2)  # warm-up; also leaves the system policy as the reusable prefix
    long_prompt = [t for p in prompts for t in p][:512]
    engine._prefix_ids = []  # computed from scratch
    one, _ = run([long_prompt], 1)
    run([prompts[0]], 1)
    together, _ = run(prompts, 1)
    out: dict[str, object] = {
        "runtime": generator.version,
        "flash_attention": engine.flash_attention,
        "prompt_tokens": [len(p) for p in prompts],
        "prefill_512_tok_s": round(512 / one, 1),
        "prefill_8_prompts_ms": round(1000 * together, 1),
    }
    for n in (1, 2, 4, 8):
        elapsed, jobs = run(prompts[:n], STEPS + 1)
        first = max(j.first_token_at for j in jobs) - min(j.submitted for j in jobs)  # type: ignore[operator]
        step = (elapsed - first) / STEPS
        out[f"step_{n}_ms"] = round(1000 * step, 1)
        out[f"decode_{n}_tok_s"] = round(n / step, 1)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adapter", help="also measure this fine-tuned generator artifact")
    parser.add_argument("--flash-attention", choices=["auto", "on", "off", "both"], default="both")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the JSON goes")
    args = parser.parse_args()
    kernels = ["on", "off"] if args.flash_attention == "both" else [args.flash_attention]
    models = [("base", "")] + ([("fine-tuned", args.adapter)] if args.adapter else [])
    rows = []
    for label, model in models:
        for kernel in kernels:
            rows.append({"model": label, **measure(model, kernel)})
    cols = [
        "model",
        "flash_attention",
        "prefill_512_tok_s",
        "prefill_8_prompts_ms",
        "step_1_ms",
        "step_2_ms",
        "step_4_ms",
        "step_8_ms",
        "decode_1_tok_s",
        "decode_8_tok_s",
    ]
    print(" | ".join(cols))
    for row in rows:
        print(" | ".join(str(row.get(c)) for c in cols))
    result = {"machine": f"{os.cpu_count()} cores", "loadavg": os.getloadavg()[0], "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2))
    shutil.move(tmp, args.out)


if __name__ == "__main__":
    main()
