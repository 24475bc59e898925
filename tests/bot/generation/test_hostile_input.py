"""Hostile customer text costs little and changes nothing it should not (issue #20, item 1)."""

from __future__ import annotations

import time

import pytest

from bot.generation.placeholders import PlaceholderStream, extract_values, fill
from tests.bot.generation.hostile_corpus import CORPUS, MAX_CHARS

ANSWER = (
    "I understand you want to cancel order {{Order Number}}. Open the "
    "'{{Online Order Interaction}}' section on our {{Website URL}}, or call "
    "{{Customer Support Phone Number}} during {{Customer Support Hours}}. We will write to "
    "{{Email}} about your refund of {{Currency Symbol}}{{Refund Amount}}, {{Client First Name}}."
)


def test_the_corpus_holds_each_kind_of_attack_within_the_message_limit():
    kinds = {name.split("-")[0] for name in CORPUS}
    assert {"pad", "separators", "token", "braces", "mixed", "emoji", "json"} <= kinds
    assert all(0 < len(text) <= MAX_CHARS for text in CORPUS.values())
    assert max(len(text) for text in CORPUS.values()) == MAX_CHARS


def test_the_whole_corpus_is_read_and_filled_quickly():
    """Before the patterns were made linear, the padded message alone took seconds to read."""
    started = time.perf_counter()
    history = [("customer", text) for text in CORPUS.values()]
    for text in CORPUS.values():
        extract_values([text])
        assert "{" not in fill(ANSWER, [("customer", text)])[0]
        # A draft that repeats the customer's text (an obedient model) is filled too.
        filled, _ = fill(text, history)
        assert "{{" not in filled and "}}" not in filled
        # Streamed as a model gives it: at most max_new_tokens (160) pieces.
        stream = PlaceholderStream(history)
        size = -(-len(text) // 160)
        streamed = "".join(stream.feed(text[i : i + size]) for i in range(0, len(text), size))
        assert "{{" not in streamed + stream.finish()
    assert time.perf_counter() - started < 2.0  # generous: a shared CPU must not make it flaky


@pytest.mark.parametrize(
    ("text", "slot", "value"),
    [
        ("I want to cancel my order" + " " * 250 + "ORD-4821 please", "order number", "ORD-4821"),
        ("tracking\t\n\n   number\u00a0\u00a0is   TRK-99812", "tracking number", "TRK-99812"),
        (
            "or\u200bder num\u200cber \uff2f\uff32\uff24\uff0d\uff11\uff12\uff13",
            "order number",
            "ORD-123",
        ),
        ("invoice\x00\x1b #INV-2020", "invoice number", "INV-2020"),
        ("I paid \u00a3 1,250.50 for it", "refund amount", "1,250.50"),
        ("mail me: \ufeffann.lee@example.com\u200b", "email", "ann.lee@example.com"),
    ],
    ids=["padded", "tabs-newlines", "zero-width-fullwidth", "controls", "thousands", "bom"],
)
def test_values_are_found_through_padding_and_invisible_characters(text, slot, value):
    assert extract_values([text])[slot] == value


def test_values_stay_what_the_customer_typed_where_nothing_hides_them():
    values = extract_values(["My name is Ann Lee, +1 555 123 4567, order #A-5512, $45.20"])
    assert values["order number"] == "A-5512"
    assert values["phone number"] == "+1 555 123 4567"
    assert values["client first name"] == "Ann" and values["refund amount"] == "45.20"


def test_too_many_slots_are_left_as_text_without_braces():
    text, missing = fill("{{Order Number}} " * 300, [("customer", "order ORD-100")])
    assert text.count("ORD-100") == 64  # placeholders.MAX_SLOTS
    assert "{" not in text and "Order Number" in text and missing == []
