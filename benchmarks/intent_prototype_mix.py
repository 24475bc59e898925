# ruff: noqa: E402 - sys.path and the environment are set before the imports
"""Exploration for issue #4: mix a 10-shot intent model with frozen-encoder class prototypes.

Not part of the product yet. It takes the 10-shot model that
`benchmarks/intent.py --only 10shot --workdir DIR` trained (`DIR/10shot`), rebuilds the same
10-shot and dev samples (seed 0), and scores three classifiers on Banking77 test.csv:

- the fine-tuned model alone (float32, top-1, no out-of-scope verdicts);
- nearest prototype: cosine to each intent's mean frozen all-MiniLM-L6-v2 vector of its 10 shots;
- their mix, ``w * p_model + (1 - w) * softmax(cosine / tau)``, with ``w`` and ``tau`` chosen on
  the dev sample (5 other training examples per intent) and applied once to the test set.

    flock /tmp/deskbot-cpu.lock .venv/bin/python benchmarks/intent_prototype_mix.py \
        --model DIR/10shot

Prints a table and writes benchmarks/results/intent_prototype_mix.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np

from bot.intent import IntentClassifier
from finetune.intent.data import read_csv, sample_per_label
from retrieval.embedder import Embedder

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "banking77"
OUT = ROOT / "benchmarks" / "results" / "intent_prototype_mix.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="the trained 10-shot artifact")
    args = parser.parse_args()

    train = read_csv(DATA / "train.csv", label_col="category")
    test = read_csv(DATA / "test.csv", label_col="category")
    shots = sample_per_label(train, 10, seed=0)
    taken = set(shots.texts)
    rest = train.subset(i for i, t in enumerate(train.texts) if t not in taken)
    dev = sample_per_label(rest, 5, seed=0)

    model = IntentClassifier.load(args.model, precision="fp32")
    labels = list(model.labels)
    encoder = Embedder(precision="fp32")
    vectors = encoder.encode(list(shots.texts))
    rows_of = {name: [i for i, lab in enumerate(shots.labels) if lab == name] for name in labels}
    protos = np.stack([vectors[rows_of[name]].mean(0) for name in labels])
    protos /= np.linalg.norm(protos, axis=1, keepdims=True)

    def model_p(texts: tuple[str, ...]) -> np.ndarray:
        return model.probabilities(list(texts)).numpy()

    def cosines(texts: tuple[str, ...]) -> np.ndarray:
        return encoder.encode(list(texts)) @ protos.T

    def proto_p(cos: np.ndarray, tau: float) -> np.ndarray:
        z = cos / tau
        z = np.exp(z - z.max(1, keepdims=True))
        return z / z.sum(1, keepdims=True)

    y_dev = np.array([labels.index(x) for x in dev.labels])
    y_test = np.array([labels.index(x) for x in test.labels])
    p_dev, p_test = model_p(dev.texts), model_p(test.texts)
    c_dev, c_test = cosines(dev.texts), cosines(test.texts)
    best = max(
        (
            (float(((w * p_dev + (1 - w) * proto_p(c_dev, tau)).argmax(1) == y_dev).mean()), tau, w)
            for tau in (0.02, 0.05, 0.1)
            for w in (0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
        ),
        key=lambda r: (r[0], r[2]),  # ties: more weight on the fine-tuned model
    )
    dev_acc, tau, w = best
    mixed = w * p_test + (1 - w) * proto_p(c_test, tau)
    rows = {
        "model": float((p_test.argmax(1) == y_test).mean()),
        "prototypes": float((c_test.argmax(1) == y_test).mean()),
        "mix": float((mixed.argmax(1) == y_test).mean()),
    }
    print(f"chosen on dev ({len(dev.texts)} examples): w={w}, tau={tau}, accuracy {dev_acc:.4f}")
    print(f"{'classifier':<12}{'test accuracy':>15}")
    for name, acc in rows.items():
        print(f"{name:<12}{acc:>15.4f}")
    OUT.write_text(
        json.dumps(
            {"model": str(args.model), "w": w, "tau": tau, "dev_accuracy": dev_acc, "test": rows},
            indent=2,
        )
    )
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
