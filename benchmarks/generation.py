"""Reply generation benchmark: speed per runtime and reply quality on held-out Bitext.

Run under the CPU lock:  flock /tmp/deskbot-cpu.lock .venv/bin/python benchmarks/generation.py \
    [--adapter DIR] [--n 96] [--skip-speed] [--skip-quality]

Speed (per runtime): load time cold (GGUF conversion into an empty cache) and cached,
single-stream decode tokens/s and first-token latency, aggregate tokens/s at 1, 4 and 8
concurrent requests. Quality: held-out questions (split by distinct question, as fine-tuning
does), index of all training-side pairs; the nearest question's answer verbatim, the most
agreed-on of the top_k answers verbatim (what the server sends without a generator), base and
fine-tuned model.
Prints a table and writes benchmarks/results/generation.json.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

# Run as a script, this folder comes first on sys.path and benchmarks/retrieval.py would shadow
# the retrieval package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

from bot.generation import ReplyRequest, load_generator  # noqa: E402
from bot.generation.embedding import load_embedder  # noqa: E402
from bot.generation.evaluate import Case, evaluate_replies, verbatim_scores  # noqa: E402
from bot.settings import load_settings  # noqa: E402
from finetune.generator.data import read_pairs, split_by_question  # noqa: E402
from finetune.generator.retrieve import PairIndex  # noqa: E402
from retrieval.config import RetrievalSettings  # noqa: E402
from retrieval.consensus import consensus_order  # noqa: E402
from retrieval.hit import Hit  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "bitext" / "bitext_cs_train.csv.gz"
RESULTS = ROOT / "benchmarks" / "results" / "generation.json"
TOP_K = RetrievalSettings().top_k  # the server's default


def settings_for(home: Path, runtime: str, **generation: object):
    return load_settings(
        home=str(home), generation={"runtime": runtime, "threads": 2, **generation}
    )


def sample_hits(n: int) -> list[Hit]:
    """One past answer for each of ``n`` intents of the bundled sample (distinct prompts)."""
    seen: dict[str, Hit] = {}
    with open(ROOT / "examples" / "sample_pairs.csv", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            if row["intent"] not in seen and len(seen) < n:
                seen[row["intent"]] = Hit(
                    len(seen) + 1, 0.8, row["instruction"], row["response"], row["intent"]
                )
    return list(seen.values())


async def speed(generator, max_new: int) -> dict[str, object]:
    # Every request decodes exactly max_new tokens (end-of-turn ignored), so runs compare.
    # Each request has its own retrieved answer, as different customers' messages do: the
    # prompts share only the system policy.
    generator.engine.stop_ids = frozenset()
    requests = [
        ReplyRequest(
            message=f"{hit.question} My order is ORD-{5550 + i}.",
            hits=(hit,),
            max_new_tokens=max_new,
        )
        for i, hit in enumerate(sample_hits(8))
    ]
    await generator.generate(requests[0])  # warm-up
    singles = []
    for request in requests[:3]:
        started = time.perf_counter()
        stream = generator.stream(request)
        first = None
        async for _ in stream:
            if first is None:
                first = time.perf_counter() - started
        draft = await stream.draft
        total = time.perf_counter() - started
        decode = draft.tokens - 1
        singles.append((first or total, decode / (total - (first or 0)) if decode > 0 else 0.0))
    out: dict[str, object] = {
        "first_token_ms": round(1000 * statistics.median(s[0] for s in singles), 1),
        "single_stream_tok_s": round(statistics.median(s[1] for s in singles), 1),
    }
    for n in (1, 4, 8):
        started = time.perf_counter()
        drafts = await asyncio.gather(*(generator.generate(r) for r in requests[:n]))
        out[f"throughput_{n}_tok_s"] = round(
            sum(d.tokens for d in drafts) / (time.perf_counter() - started), 1
        )
    out["scaling_8_vs_1"] = round(out["throughput_8_tok_s"] / out["throughput_1_tok_s"], 2)  # type: ignore[operator]
    # The ratio: 8 concurrent requests (prompts included) against single-stream decode.
    out["scaling_8_vs_single"] = round(
        out["throughput_8_tok_s"] / out["single_stream_tok_s"],  # type: ignore[operator]
        2,
    )
    return out


def bench_runtime(
    name: str, runtime: str, model: str, max_new: int, **generation: object
) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        s = settings_for(home, runtime, grounding_embedder=False, **generation)
        started = time.perf_counter()
        generator = load_generator(s, model)
        cold = time.perf_counter() - started
        asyncio.run(generator.close())
        started = time.perf_counter()
        generator = load_generator(s, model)
        cached = time.perf_counter() - started

        async def run():
            try:
                return await speed(generator, max_new)
            finally:
                await generator.close()

        figures = asyncio.run(run())
    return {
        "runtime": name,
        "load_cold_s": round(cold, 2),
        "load_cached_s": round(cached, 2),
        "max_new_tokens": max_new,
        **figures,
    }


def quality(adapter: str | None, n: int, seed: int) -> dict[str, object]:
    pairs = read_pairs(DATA)
    train, held = split_by_question(pairs)
    rng = random.Random(seed)
    # One case per distinct held-out question.
    by_question = {}
    for p in held:
        by_question.setdefault(p.question.lower(), p)
    cases_pairs = rng.sample(sorted(by_question.values(), key=lambda p: p.id), n)
    cases = [Case(p.question, p.answer, p.intent) for p in cases_pairs]
    embedder = load_embedder()
    # Every training-side pair is indexed, as a deployment indexes all its past conversations,
    # and each question gets the server's top_k hits, most agreed-on answer first.
    index = PairIndex(train, embedder)
    nearest = index.search([c.question for c in cases], k=TOP_K, exclude_same=False)
    hits = [consensus_order(h) for h in nearest]
    out: dict[str, object] = {
        "cases": n,
        "index_pairs": len(train),
        "verbatim nearest": verbatim_scores(cases, nearest).to_dict(),
        "verbatim": verbatim_scores(cases, hits).to_dict(),
    }
    models = {"base": ""}
    if adapter:
        models["fine-tuned"] = adapter
    with tempfile.TemporaryDirectory() as tmp:
        for label, model in models.items():
            s = settings_for(Path(tmp), "auto")
            generator = load_generator(s, model, embedder=embedder)

            async def run(g=generator):
                try:
                    return await evaluate_replies(g, cases, hits, concurrency=8)
                finally:
                    await g.close()

            scores, drafts = asyncio.run(run())
            out[label] = {
                **scores.to_dict(),
                "model": generator.version,
                "example": drafts[0].text[:400],
            }
            print(f"  {label}: {scores.to_dict()}", file=sys.stderr)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--adapter", help="fine-tuned generator artifact (train generator --out)")
    parser.add_argument("--n", type=int, default=96, help="held-out questions for quality")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--skip-transformers", action="store_true")
    parser.add_argument(
        "--flash-attention", choices=["auto", "on", "off"], default="auto", help="llama.cpp rows"
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the JSON goes")
    args = parser.parse_args()
    torch.set_num_threads(2)
    fa = args.flash_attention
    result: dict[str, object] = {
        "machine": f"{os.cpu_count()} cores",
        "loadavg_at_start": os.getloadavg()[0],
    }
    if not args.skip_speed:
        rows = [
            bench_runtime(
                "llama.cpp Q8_0 from Q4_1 (base, default)",
                "llama_cpp",
                "",
                128,
                flash_attention=fa,
            ),
            bench_runtime(
                "llama.cpp Q4_1 (base, gguf_quant=original)",
                "llama_cpp",
                "",
                128,
                gguf_quant="original",
                flash_attention=fa,
            ),
        ]
        if args.adapter:
            rows.append(
                bench_runtime(
                    "llama.cpp merged Q8_0 (fine-tuned)",
                    "llama_cpp",
                    args.adapter,
                    128,
                    flash_attention=fa,
                )
            )
        if not args.skip_transformers:
            rows.append(bench_runtime("transformers fp32 (base)", "transformers", "", 48))
        result["speed"] = rows
        cols = [
            "runtime",
            "load_cold_s",
            "load_cached_s",
            "first_token_ms",
            "single_stream_tok_s",
            "throughput_1_tok_s",
            "throughput_4_tok_s",
            "throughput_8_tok_s",
            "scaling_8_vs_1",
            "scaling_8_vs_single",
        ]
        print(" | ".join(cols))
        for row in rows:
            print(" | ".join(str(row.get(c)) for c in cols))
    if not args.skip_quality:
        q = quality(args.adapter, args.n, args.seed)
        result["quality"] = q
        print(
            "\nreplies | grounded_rate | rouge_l | placeholder_leak_rate | tokens_per_s"
            " | first_token_ms_p50"
        )
        for label in ("verbatim nearest", "verbatim", "base", "fine-tuned"):
            if label in q:
                r = q[label]
                print(
                    f"{label} | {r['grounded_rate']} | {r['rouge_l']} | "
                    f"{r['placeholder_leak_rate']} | {r['tokens_per_s']} | "
                    f"{r['first_token_ms_p50']}"
                )
    result["loadavg_at_end"] = os.getloadavg()[0]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2))
    shutil.move(tmp, args.out)


if __name__ == "__main__":
    main()
