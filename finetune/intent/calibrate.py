"""Confidence calibration: temperature scaling, the out-of-scope threshold, the ambiguity margin."""

from __future__ import annotations

import itertools

import numpy as np
import torch

MIN_TEMPERATURE = 0.25
MAX_TEMPERATURE = 10.0


def fit_temperature(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """The temperature that minimises the dev negative log-likelihood (Guo et al., 2017)."""
    log_t = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200, line_search_fn="strong_wolfe")
    logits = logits.detach().float().clone()  # may be an inference-mode tensor

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(logits / log_t.exp(), targets)
        loss.backward()
        return loss

    opt.step(closure)
    # A dev set the model gets entirely right pushes T towards 0 (certainty); the floor
    # keeps such a model from claiming probabilities of exactly 1.
    return float(min(max(log_t.exp().item(), MIN_TEMPERATURE), MAX_TEMPERATURE))


def choose_oos_threshold(
    confidence: np.ndarray,
    predicted: np.ndarray,
    targets: np.ndarray,
    oos_index: int | None,
    keep_correct: float,
) -> float:
    """The confidence below which an answer is out of scope.

    With out-of-scope dev examples: the middle of the range of thresholds that maximise dev
    accuracy when low confidence counts as an out-of-scope prediction. Without: the threshold
    that keeps ``keep_correct`` of the correct dev answers.
    """
    if oos_index is not None and (targets == oos_index).any():
        candidates = np.unique(np.concatenate([[0.0], confidence, [1.0]]))
        accuracy = np.array(
            [(np.where(confidence < t, oos_index, predicted) == targets).mean() for t in candidates]
        )
        best = np.flatnonzero(accuracy == accuracy.max())
        # Many thresholds tie on a small dev set: take the middle of the first best plateau.
        end = best[0]
        while end + 1 < len(candidates) and accuracy[end + 1] == accuracy.max():
            end += 1
        return float((candidates[best[0]] + candidates[end]) / 2)
    correct = confidence[predicted == targets]
    if correct.size == 0:
        return 0.0
    return float(np.quantile(correct, 1.0 - keep_correct))


def choose_ambiguity_margin(
    margin: np.ndarray, correct: np.ndarray, target_accuracy: float, cap: float
) -> float:
    """The smallest top1-top2 gap above which dev answers reach ``target_accuracy``."""
    if margin.size == 0:
        return 0.0
    for m in np.linspace(0.0, cap, round(cap / 0.01) + 1):
        kept = margin >= m
        if not kept.any() or correct[kept].mean() >= target_accuracy:
            return float(m)
    return float(cap)


def expected_calibration_error(
    confidence: np.ndarray, correct: np.ndarray, bins: int = 15
) -> float:
    if confidence.size == 0:
        return 0.0
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece = 0.0
    for lo, hi in itertools.pairwise(edges):
        in_bin = (confidence > lo) & (confidence <= hi)
        if in_bin.any():
            ece += in_bin.mean() * abs(confidence[in_bin].mean() - correct[in_bin].mean())
    return float(ece)
