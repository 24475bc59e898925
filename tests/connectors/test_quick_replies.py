"""Quick replies as every platform shares them: which choices are offered, numbered text, and
plain replies left alone. Each platform's own shape (and its press coming back as the label) is
tested in that platform's folder: each press test posts the platform's recorded press event with
the buttons deskbot actually sent put in, so the round trip is the one a customer makes."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.quick_replies import numbered_text, quick_replies_meta
from tests.connectors.harness import CASE, LABELS, NUMBERED, Harness, offer


def test_only_a_list_of_non_empty_strings_becomes_quick_replies() -> None:
    assert quick_replies_meta({"quick_replies": [" Cancel an order ", "Other"]}) == {
        "quick_replies": ["Cancel an order", "Other"]
    }
    assert quick_replies_meta({"quick_replies": ["Yes", "Yes", "No"]}) == {
        "quick_replies": ["Yes", "No"]
    }
    for bad in ("Cancel", ["Cancel", ""], ["Cancel", 3], [" "], {"a": 1}, [], None):
        assert quick_replies_meta({"quick_replies": bad}) == {}, bad
    assert quick_replies_meta(None) == {}
    assert quick_replies_meta({"sources": [1]}) == {}


def test_numbered_text_cuts_the_text_never_the_choices() -> None:
    assert numbered_text("Did you mean:", LABELS) == "Did you mean:" + NUMBERED
    cut = numbered_text("x" * 2000, LABELS, 1600)
    assert len(cut) == 1600
    assert cut.endswith(NUMBERED)
    assert cut.startswith("xxx") and "…" in cut
    assert numbered_text("plain", [], 1600) == "plain"


@pytest.mark.parametrize("name", ["twilio", "webhook"])
async def test_numbered_platforms_leave_plain_replies_alone(make_harness: Any, name: str) -> None:
    h: Harness = await make_harness(CASE[name])
    sent = await offer(h)
    text = sent.form()["Body"] if name == "twilio" else sent.json()["text"]
    assert text == "echo: Where is my order?"
    if name == "webhook":
        assert sent.json()["quick_replies"] == []
