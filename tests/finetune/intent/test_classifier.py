"""The classifier as the server runs it: a customer query is read up to its token cap."""

from __future__ import annotations

from pathlib import Path

import torch

from finetune.intent.classifier import IntentClassifier

CAP = 16


def test_max_tokens_reads_a_query_only_up_to_the_cap(tiny_model: Path) -> None:
    capped = IntentClassifier.load(tiny_model, max_tokens=CAP)
    whole = IntentClassifier.load(tiny_model)
    at_cap = " ".join(["card"] * (CAP - 2))
    one_past = at_cap + " cash"
    assert len(capped.tokenizer(one_past)["input_ids"]) == CAP + 1
    assert whole.max_length > CAP
    assert torch.equal(capped.logits([one_past]), capped.logits([at_cap]))
    assert not torch.allclose(whole.logits([one_past]), whole.logits([at_cap]))
    # A cap above the length the model was trained with changes nothing.
    assert IntentClassifier.load(tiny_model, max_tokens=10_000).max_length == whole.max_length
