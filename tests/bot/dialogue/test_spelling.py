"""Typos read as the words meant before the encoders read a message (bot/dialogue/spelling.py)."""

from __future__ import annotations

import pytest

from bot.dialogue.spelling import Speller


@pytest.fixture(scope="module")
def speller() -> Speller:
    return Speller.from_questions(["how do I upgrade my Freemium account", "track order"])


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("cancle my pucrhase", "cancel my purchase"),
        (
            "i want assistance to see the eta of the ordder",
            "i want assistance to see the eta of the order",
        ),
        ("delete freemium acvount", "delete freemium account"),
        (
            "I need help to see the accepted paayment options",
            "I need help to see the accepted payment options",
        ),
        ("Restitutiom of money!", "restitution of money!"),
    ],
)
def test_misspelt_words_read_as_the_words_meant(speller: Speller, typed: str, meant: str) -> None:
    assert speller.correct(typed) == meant


@pytest.mark.parametrize(
    "text",
    [
        "what's the weather in Paris?",  # English words and names
        "upgrade my freemium account",  # not English, but a word of the known questions
        "helo ur pls thx",  # too short to tell a typo from slang
        "order ORD-5521, email jo.smith@example.com",  # codes and addresses
        "x" * 40,  # no word is that long
        "qwrtzpfl",  # nothing within one edit
    ],
)
def test_real_words_names_codes_and_slang_are_read_as_typed(speller: Speller, text: str) -> None:
    assert speller.correct(text) == text


def test_a_typo_the_logs_kept_is_still_read_as_the_word_meant() -> None:
    """Known questions hold typos too; a rare variant of a frequent word is one of them."""
    logs = ["cancel my purchase"] * 40 + ["cancle my purcahse", "upgrade my freemium plan"]
    speller = Speller.from_questions(logs)
    assert speller.correct("cancle my purcahse") == "cancel my purchase"
    assert speller.correct("upgrade my freemium plan") == "upgrade my freemium plan"
    # As frequent as the word it is near: a word of this business, read as typed.
    assert Speller.from_questions(["cancle"] * 3 + ["cancel"] * 3).correct("cancle") == "cancle"
