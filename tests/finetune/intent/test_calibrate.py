from __future__ import annotations

import numpy as np
import torch

from finetune.intent.calibrate import (
    choose_ambiguity_margin,
    choose_oos_threshold,
    expected_calibration_error,
    fit_temperature,
)


def test_fit_temperature_recovers_the_generating_temperature() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(4000, 6, generator=gen) * 4
    true_t = 2.5
    targets = torch.multinomial(torch.softmax(logits / true_t, dim=-1), 1, generator=gen)[:, 0]
    assert abs(fit_temperature(logits, targets) - true_t) < 0.25


def test_oos_threshold_maximises_accuracy_with_oos_examples() -> None:
    # Class 2 is out of scope; its examples get low confidence on wrong in-scope classes.
    confidence = np.array([0.95, 0.9, 0.85, 0.4, 0.35, 0.3])
    predicted = np.array([0, 1, 0, 1, 0, 1])
    targets = np.array([0, 1, 0, 2, 2, 2])
    t = choose_oos_threshold(confidence, predicted, targets, oos_index=2, keep_correct=0.95)
    assert 0.4 < t <= 0.85


def test_oos_threshold_without_oos_keeps_most_correct_answers() -> None:
    rng = np.random.default_rng(0)
    confidence = rng.uniform(0.5, 1.0, 1000)
    predicted = np.zeros(1000, dtype=int)
    t = choose_oos_threshold(confidence, predicted, predicted, oos_index=None, keep_correct=0.9)
    assert abs((confidence >= t).mean() - 0.9) < 0.01


def test_ambiguity_margin_flags_the_close_calls() -> None:
    margin = np.array([0.9, 0.8, 0.7, 0.05, 0.04, 0.02])
    correct = np.array([1, 1, 1, 0, 1, 0], dtype=float)
    m = choose_ambiguity_margin(margin, correct, target_accuracy=0.95, cap=0.5)
    assert 0.05 < m <= 0.7


def test_ece_is_zero_when_confidence_matches_accuracy_and_large_when_not() -> None:
    confidence = np.full(1000, 0.7)
    correct = np.array([1.0] * 700 + [0.0] * 300)
    assert expected_calibration_error(confidence, correct) < 1e-9
    assert expected_calibration_error(np.full(1000, 0.99), correct) > 0.25
