from __future__ import annotations

from collections import Counter
from typing import Any

from bot.retrain import gate, merge, plan_intent_data, split_by_hash
from bot.settings import load_settings
from finetune.intent.data import Examples


def figures(accuracy: float, **recall: float) -> dict[str, Any]:
    return {
        "accuracy": accuracy,
        "per_intent": {name: {"recall": r, "support": 10} for name, r in recall.items()},
    }


def test_better_candidate_is_promoted() -> None:
    d = gate(figures(0.9, a=0.9, b=0.9), figures(0.6, a=0.9, b=0.3), margin=0, max_intent_drop=0.1)
    assert d.promote
    assert d.as_dict()["decision"] == "promoted"
    assert d.as_dict()["delta"] == 0.3
    assert d.intent_changes["b"] == {"active": 0.3, "candidate": 0.9, "support": 10}


def test_worse_beyond_margin_stays_candidate_and_says_why() -> None:
    d = gate(figures(0.80, a=0.8), figures(0.85, a=0.8), margin=0.02, max_intent_drop=0.1)
    assert not d.promote
    assert "worse beyond the margin" in d.reasons[0]
    # Within the margin it passes.
    assert gate(
        figures(0.84, a=0.8), figures(0.85, a=0.8), margin=0.02, max_intent_drop=0.1
    ).promote


def test_one_intent_regressing_blocks_promotion_even_if_overall_better() -> None:
    d = gate(
        figures(0.95, a=1.0, b=0.6, c=1.0),
        figures(0.80, a=0.6, b=0.9, c=0.9),
        margin=0,
        max_intent_drop=0.1,
    )
    assert not d.promote
    assert any("'b'" in r and "0.900 -> 0.600" in r for r in d.reasons)


def test_intents_with_too_few_examples_are_reported_not_judged() -> None:
    cand = figures(0.95, a=1.0, b=0.0)
    cand["per_intent"]["b"]["support"] = 2
    d = gate(cand, figures(0.8, a=0.7, b=1.0), margin=0, max_intent_drop=0.1, min_support=5)
    assert d.promote
    assert any("not judged" in r for r in d.reasons)


def test_first_model_is_promoted_without_comparison() -> None:
    d = gate(figures(0.5, a=0.5), None, margin=0, max_intent_drop=0.1)
    assert d.promote and d.active is None


def test_held_out_texts_are_stable_and_never_trained_on() -> None:
    base = Examples.from_pairs((f"base question {i}", f"i{i % 4}") for i in range(200))
    logs = Examples.from_pairs((f"log question {i}", "new") for i in range(80))
    learning = load_settings(learning={"eval_fraction": 0.2, "holdout_fraction": 0.25}).learning
    plan = plan_intent_data(base, logs, learning)
    assert set(plan.train.texts).isdisjoint(plan.held_out.texts)
    assert 10 <= plan.log_held_out <= 30 and plan.log_train == 80 - plan.log_held_out
    assert 20 <= plan.fixed_eval <= 60
    assert "new" in plan.held_out.labels and "new" in plan.train.labels
    # The same split every time, and a text keeps its side when more data arrives.
    more = merge(logs, Examples.from_pairs([("log question 999", "new")]))
    again = plan_intent_data(base, more, learning)
    assert set(plan.held_out.texts) <= set(again.held_out.texts)
    # Copies that differ in case and spacing land on the same side.
    copies = Examples.from_pairs(
        (text, "new") for i in range(40) for text in (f"Log  Question {i}", f"log question {i}")
    )
    _, out = split_by_hash(copies, 0.25, "holdout")
    held = Counter(" ".join(t.split()).lower() for t in out.texts)
    assert held and set(held.values()) == {2}


def test_log_corrections_override_base_labels() -> None:
    base = Examples.from_pairs([("where is my parcel", "track_order"), ("hi", "greet")])
    logs = Examples.from_pairs([("Where is my  parcel", "delivery_period")])
    merged = merge(base, logs)
    assert dict(zip(merged.texts, merged.labels, strict=True))["Where is my  parcel"] == (
        "delivery_period"
    )
    assert len(merged) == 2
