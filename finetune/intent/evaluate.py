"""Evaluation of an intent classifier: accuracy, macro-F1, out-of-scope figures, ECE, latency."""

from __future__ import annotations

import csv
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

from bot.errors import InputError
from finetune.intent.calibrate import expected_calibration_error


class _Prediction(Protocol):
    @property
    def intent(self) -> str: ...
    @property
    def confidence(self) -> float: ...
    @property
    def verdict(self) -> str: ...


class Classifier(Protocol):
    @property
    def labels(self) -> tuple[str, ...]: ...

    def predict(self, texts: list[str], /) -> Sequence[_Prediction]: ...


@dataclass(frozen=True)
class EvalReport:
    metrics: dict[str, Any]
    texts: tuple[str, ...]
    gold: tuple[str, ...]
    predicted: tuple[str, ...]
    confidence: tuple[float, ...]


def predicted_label(pred: _Prediction, oos_label: str) -> str:
    return oos_label if pred.verdict == "out_of_scope" else pred.intent


def evaluate_report(
    classifier: Classifier,
    texts: Sequence[str],
    labels: Sequence[str],
    oos_label: str = "oos",
    *,
    latency_samples: int = 50,
) -> EvalReport:
    if len(texts) != len(labels):
        raise InputError(f"{len(texts)} texts but {len(labels)} labels")
    if not texts:
        raise InputError("no evaluation examples")
    preds = classifier.predict(list(texts))
    gold = np.array(labels, dtype=object)
    predicted = np.array([predicted_label(p, oos_label) for p in preds], dtype=object)
    top1 = np.array([p.intent for p in preds], dtype=object)
    confidence = np.array([p.confidence for p in preds], dtype=float)

    names = sorted(set(gold) | set(predicted))
    p, r, f, support = precision_recall_fscore_support(
        gold, predicted, labels=names, zero_division=0
    )
    gold_names = sorted(set(gold))
    in_gold = [names.index(n) for n in gold_names]
    metrics: dict[str, Any] = {
        "n": len(texts),
        "accuracy": float((predicted == gold).mean()),
        # The model's best intent, verdicts ignored: the closed-set figure papers report.
        "top1_accuracy": float((top1 == gold).mean()),
        "macro_f1": float(np.mean(f[in_gold])),
        "ece": expected_calibration_error(confidence, (top1 == gold).astype(float)),
        "verdicts": {
            v: int(sum(1 for x in preds if x.verdict == v))
            for v in ("confident", "ambiguous", "out_of_scope")
        },
    }
    is_oos = gold == oos_label
    if is_oos.any():
        metrics["in_scope_accuracy"] = (
            float((predicted[~is_oos] == gold[~is_oos]).mean()) if ((~is_oos).any()) else 0.0
        )
        metrics["oos_recall"] = float((predicted[is_oos] == oos_label).mean())
    confident = np.array([x.verdict == "confident" for x in preds])
    if confident.any():
        metrics["confident_accuracy"] = float((predicted[confident] == gold[confident]).mean())
    metrics["per_intent"] = {
        name: {
            "precision": float(p[i]),
            "recall": float(r[i]),
            "f1": float(f[i]),
            "support": int(support[i]),
        }
        for i, name in enumerate(names)
    }
    metrics["predict_ms_p50"] = single_query_latency_ms(classifier, texts, latency_samples)
    return EvalReport(
        metrics=metrics,
        texts=tuple(texts),
        gold=tuple(gold.tolist()),
        predicted=tuple(predicted.tolist()),
        confidence=tuple(confidence.tolist()),
    )


def evaluate(
    classifier: Classifier, texts: Sequence[str], labels: Sequence[str], oos_label: str = "oos"
) -> dict[str, Any]:
    """Figures for ``classifier`` on labelled ``texts``; see :func:`evaluate_report`."""
    return evaluate_report(classifier, texts, labels, oos_label).metrics


def single_query_latency_ms(classifier: Classifier, texts: Sequence[str], samples: int) -> float:
    """Median wall time of one-message predictions, as the server sees them without batching."""
    if samples <= 0:
        return 0.0
    step = max(1, len(texts) // samples)
    chosen = list(texts[::step])[:samples]
    times = []
    for text in chosen:
        start = time.perf_counter()
        classifier.predict([text])
        times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 3)


def write_errors_csv(report: EvalReport, path: str | Path) -> Path:
    path = Path(path)
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "gold", "predicted", "confidence"])
        for text, g, p, c in zip(
            report.texts, report.gold, report.predicted, report.confidence, strict=True
        ):
            if g != p:
                writer.writerow([text, g, p, f"{c:.4f}"])
    return path


def write_confusion_png(report: EvalReport, path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted(set(report.gold) | set(report.predicted))
    matrix = confusion_matrix(report.gold, report.predicted, labels=names)
    size = max(6.0, 0.18 * len(names) + 3)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(np.log1p(matrix), cmap="Blues")
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=6)
    ax.set_yticks(range(len(names)), names, fontsize=6)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title(f"accuracy {report.metrics['accuracy']:.4f} (n={report.metrics['n']})")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def format_report(metrics: dict[str, Any], worst: int = 10) -> str:
    lines = [
        f"examples          {metrics['n']}",
        f"accuracy          {metrics['accuracy']:.4f} (out-of-scope verdicts count as {'oos'!r})",
        f"top-1 accuracy    {metrics['top1_accuracy']:.4f} (verdicts ignored)",
        f"macro F1          {metrics['macro_f1']:.4f}",
    ]
    if "in_scope_accuracy" in metrics:
        lines.append(f"in-scope accuracy {metrics['in_scope_accuracy']:.4f}")
        lines.append(f"oos recall        {metrics['oos_recall']:.4f}")
    lines.append(f"ECE               {metrics['ece']:.4f}")
    v = metrics["verdicts"]
    lines.append(
        f"verdicts          confident {v['confident']}, ambiguous {v['ambiguous']}, "
        f"out_of_scope {v['out_of_scope']}"
    )
    lines.append(f"predict p50       {metrics['predict_ms_p50']:.2f} ms (one message)")
    per = sorted(metrics["per_intent"].items(), key=lambda kv: kv[1]["f1"])
    lines.append(f"weakest {min(worst, len(per))} intents (precision / recall / F1, support):")
    for name, m in per[:worst]:
        lines.append(
            f"  {name:<32} {m['precision']:.3f} / {m['recall']:.3f} / {m['f1']:.3f}  {m['support']}"
        )
    return "\n".join(lines)
