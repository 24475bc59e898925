"""Scoring the scrubber on the labelled PII set, shared by tests/bot/test_scrub.py and
benchmarks/scrub.py.

A labelled value is caught when every letter and digit of it lies inside a span the scrubber
replaces (of any type: a card number taken for a phone number is still gone); it is typed
right when one span of its own type covers it. A negative line (no personal data) is a false
positive when the scrubber changes anything in it.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bot.scrub import Scrubber

PII_SET = Path(__file__).resolve().parents[2] / "benchmarks" / "data" / "pii_set.jsonl"

# Recall targets from issue 21; other types are reported without one.
TARGETS = {
    "Email": 0.99,
    "Card Number": 0.99,
    "IBAN": 0.99,
    "Phone Number": 0.99,
    "Address": 0.90,
    "Date of Birth": 0.90,
}
MAX_FALSE_POSITIVE_RATE = 0.01


def load(path: Path = PII_SET) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def evaluate(rows: Iterable[dict[str, Any]], scrubber: Scrubber) -> dict[str, Any]:
    total: Counter[str] = Counter()
    caught: Counter[str] = Counter()
    typed: Counter[str] = Counter()
    negatives = false_positives = spurious = 0
    fp_by_family: Counter[str] = Counter()
    misses: dict[str, list[str]] = defaultdict(list)
    fp_examples: list[str] = []
    for row in rows:
        text = row["text"]
        found = scrubber.find(text)
        if not row["pii"]:
            negatives += 1
            if found:
                false_positives += 1
                fp_by_family[row["kind"]] += 1
                fp_examples.append(scrubber(text))
            continue
        for label in row["pii"]:
            kind, start, end = label["type"], label["start"], label["end"]
            total[kind] += 1
            chars = [i for i in range(start, end) if text[i].isalnum()]
            if all(any(f.start <= i < f.end for f in found) for i in chars):
                caught[kind] += 1
                if any(f.name == kind and f.start <= chars[0] and chars[-1] < f.end for f in found):
                    typed[kind] += 1
            else:
                misses[kind].append(scrubber(text))
        spurious += sum(
            not any(f.start < p["end"] and p["start"] < f.end for p in row["pii"]) for f in found
        )
    per_type = {
        kind: {
            "values": total[kind],
            "recall": caught[kind] / total[kind],
            "typed": typed[kind] / total[kind],
            "target": TARGETS.get(kind),
        }
        for kind in sorted(total)
    }
    return {
        "per_type": per_type,
        "negatives": negatives,
        "false_positives": false_positives,
        "false_positive_rate": false_positives / negatives if negatives else 0.0,
        "false_positives_by_family": dict(sorted(fp_by_family.items())),
        "spurious_spans_on_positive_lines": spurious,
        "misses": {k: v[:5] for k, v in sorted(misses.items())},
        "false_positive_examples": fp_examples[:10],
    }


def failures(report: dict[str, Any]) -> list[str]:
    """The targets the report misses, in words (empty when all are met)."""
    out = [
        f"{kind}: recall {r['recall']:.1%} < {r['target']:.0%} (e.g. {report['misses'][kind][:2]})"
        for kind, r in report["per_type"].items()
        if r["target"] is not None and r["recall"] < r["target"]
    ]
    if report["false_positive_rate"] > MAX_FALSE_POSITIVE_RATE:
        out.append(
            f"false positives {report['false_positive_rate']:.1%} > "
            f"{MAX_FALSE_POSITIVE_RATE:.0%} (e.g. {report['false_positive_examples'][:3]})"
        )
    return out
