from __future__ import annotations

import pytest

from bot.errors import InputError
from finetune.generator.prompt import PromptBuilder, PromptConfig, ReplyRequest, build_messages
from retrieval.hit import Hit

HITS = (
    Hit(
        11,
        0.91,
        "how do I cancel an order",
        "Cancel order {{Order Number}} on the Orders page.",
        "cancel_order",
    ),
    Hit(12, 0.74, "cancel purchase", "Purchases can be cancelled within 24 hours.", "cancel_order"),
    Hit(13, 0.52, "track order", "Track your parcel with the tracking number.", "track_order"),
)


def _request(turns: int = 0, message: str = "please cancel my order ORD-1234") -> ReplyRequest:
    history = tuple(
        ("customer" if i % 2 == 0 else "bot", f"turn number {i} about my order")
        for i in range(turns)
    )
    return ReplyRequest(message=message, history=history, hits=HITS, intent="cancel_order")


def test_prompt_holds_policy_sources_scores_intent_and_turns(tiny_tokenizer):
    config = PromptConfig(company_name="Acme")
    prompt = PromptBuilder(tiny_tokenizer, config).build(_request(turns=2))
    text = tiny_tokenizer.decode(prompt.ids)
    system = prompt.messages[0]["content"]
    assert "customer support assistant of Acme" in system
    assert "[1] (relevance 0.91)" in system and "{{Order Number}}" in system
    assert "Predicted intent of the customer: cancel_order" in system
    assert [m["role"] for m in prompt.messages] == ["system", "user", "assistant", "user"]
    assert prompt.messages[-1]["content"] == "please cancel my order ORD-1234"
    assert text.endswith("<|im_start|>assistant\n")  # the chat template was applied
    assert prompt.sources == (11, 12, 13)
    assert prompt.dropped_turns == 0


def test_truncation_drops_the_oldest_turns_first(tiny_tokenizer):
    full = PromptBuilder(tiny_tokenizer, PromptConfig(context_tokens=100_000)).build(_request(6))
    # A budget that fits the prompt with about two turns fewer.
    budget = len(full.ids) - 2 * 12
    config = PromptConfig(context_tokens=budget + 10, max_new_tokens=10)
    prompt = PromptBuilder(tiny_tokenizer, config).build(_request(6))
    assert len(prompt.ids) <= budget
    assert 0 < prompt.dropped_turns < 6
    kept = [m["content"] for m in prompt.messages[1:-1]]
    assert "turn number 5 about my order" in kept[-1]  # the newest turn survives
    assert all("turn number 0 " not in k for k in kept)
    assert prompt.sources == (11, 12, 13)  # sources go only after all turns


def test_then_sources_then_the_start_of_the_message(tiny_tokenizer):
    short = ReplyRequest(message="how do I cancel?", hits=HITS[:1])
    base = len(PromptBuilder(tiny_tokenizer, PromptConfig()).build(short).ids)
    long_message = "blah " * 400 + "how do I cancel?"
    config = PromptConfig(context_tokens=base + 40, max_new_tokens=10)
    prompt = PromptBuilder(tiny_tokenizer, config).build(_request(4, message=long_message))
    assert len(prompt.ids) <= base + 30
    assert "blah blah" in prompt.messages[-1]["content"]  # as much of the message as fits
    assert prompt.dropped_turns == 4
    assert prompt.sources == (11,)
    assert prompt.messages[-1]["content"].endswith("how do I cancel?")


def test_consecutive_turns_of_one_speaker_are_merged():
    request = ReplyRequest(
        message="hello?", history=(("bot", "hi"), ("agent", "I am Sam")), hits=()
    )
    messages = build_messages(request, PromptConfig())
    assert [m["role"] for m in messages] == ["system", "assistant", "user"]
    assert messages[1]["content"] == "hi\nI am Sam"
    assert "none were found" in messages[0]["content"]


def test_bad_requests_are_refused():
    with pytest.raises(InputError, match="message"):
        ReplyRequest(message="  ")
    with pytest.raises(InputError, match=r"history\[0\]"):
        ReplyRequest(message="hi", history=(("robot", "x"),))
