"""The small-talk model's spelling view: messages of social words only, typos allowed."""

from __future__ import annotations

import numpy as np
import pytest

from bot.dialogue import smalltalk as st


@pytest.fixture(scope="module")
def model() -> st.SmallTalkModel:
    return st.SmallTalkModel()


@pytest.mark.parametrize(
    "text",
    [
        "thnx",
        "ok great. thnx.",
        "fine. tnx for the help.",
        "ok ok fine tanks",  # one typo in a longer word
        "nope thats it. thanks again.",
        "hullo",
        "Hi :)",
        "yes",
        "nah I'm good",
    ],
)
def test_messages_of_social_words_are_closed(model: st.SmallTalkModel, text: str) -> None:
    assert model.closed(text)


@pytest.mark.parametrize(
    "text",
    [
        "hi, I want to cancel my order",
        "ok thanks, and how long does it take?",
        "ORD-5521",
        "and to Canada?",
        "thanks, where is my refund?",
        "",
        "thanks " * 20,  # too long to be a closer
        "ok so what now?",  # a question word: "what" is no typo of "that"
    ],
)
def test_a_question_or_a_value_is_not_closed(model: st.SmallTalkModel, text: str) -> None:
    assert not model.closed(text)


class _Blind:
    """An encoder that sees nothing alike: only the spelling view can match."""

    def encode(self, texts: list[str]) -> np.ndarray:
        rng = np.random.default_rng(0)
        v = rng.normal(size=(len(texts), 16)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_spelling_view_finds_the_label_the_encoder_misses(model: st.SmallTalkModel) -> None:
    enc = _Blind()
    texts = ["thanx a lot!!", "helloo there", "nope, thats all"]
    far = -np.ones((len(texts), 16), dtype=np.float32) / 4.0  # far from every example
    got = model.classify(far, enc, texts)
    assert [g.label for g in got] == [st.THANKS, st.GREET, st.BYE]
    assert all(g.closed for g in got)
    blind = model.classify(far, enc)  # without the texts, only the encoder view counts
    assert all(not g.closed for g in blind)
    assert max(g.score for g in blind) < min(g.score for g in got)


@pytest.mark.parametrize(
    ("text", "read"),
    [
        ("hi team. I want to cancel my order", "I want to cancel my order"),
        ("good morning, help me add articles", "help me add articles"),
        ("helo see the eta of the purchase", "see the eta of the purchase"),
        ("Hey there! where is my refund?", "where is my refund?"),
        ("hi", "hi"),  # a greeting alone stays one
        ("hello there", "hello there"),
        ("hi cancel", "hi cancel"),  # too little left to stand on its own
        ("good service so far", "good service so far"),  # "good" greets only with a time of day
        ("there is a problem with my order", "there is a problem with my order"),
    ],
)
def test_a_greeting_before_a_question_is_left_out(text: str, read: str) -> None:
    assert st.without_greeting(text) == read


def test_leaving_out_a_greeting_looks_only_at_the_first_words() -> None:
    hostile = "hi " * 200_000 + "cancel my order"
    read = st.without_greeting(hostile)
    assert read.endswith("cancel my order") and len(hostile) - len(read) == len("hi ") * 6
