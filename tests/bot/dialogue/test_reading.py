"""How the pipeline reads one message in its conversation (``ReplyPipeline._read``): rules that
no sample model can be made to trigger on demand, checked with the model's verdict given."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from bot.dialogue import smalltalk
from bot.dialogue.smalltalk import SmallTalkGuess
from bot.dialogue.state import DialogueState
from bot.pipeline import ReplyPipeline
from bot.runtime import Understanding
from bot.settings import Settings
from finetune.intent.classifier import IntentPrediction


def _pipeline(tmp_path: Path) -> ReplyPipeline:
    # Reading a message needs only the settings: no database, models, bus or outbox.
    return ReplyPipeline(Settings(home=tmp_path), None, None, None, None)  # type: ignore[arg-type]


def _person_guess(confidence: float) -> Understanding:
    pred = IntentPrediction(
        "contact_human_agent",
        confidence,
        (("contact_human_agent", confidence), ("track_order", 1 - confidence)),
        "ambiguous",
    )
    return Understanding(pred, (), "model", None, 0.3)


@pytest.mark.parametrize("text", ["#28088", "996876", "it's ORD-5521", "me@example.com"])
async def test_a_bare_value_never_asks_for_a_person(tmp_path: Path, text: str) -> None:
    """The intent model may read a lone number as anything; it is a value, not a request."""
    reading, _ = await _pipeline(tmp_path)._read(DialogueState(), text, _person_guess(0.8))
    assert not reading.human


async def test_words_asking_for_a_person_still_do(tmp_path: Path) -> None:
    reading, _ = await _pipeline(tmp_path)._read(
        DialogueState(), "let me talk to someone", _person_guess(0.8)
    )
    assert reading.human


async def test_chat_about_anything_else_is_no_request_for_a_person(tmp_path: Path) -> None:
    """ "tell me a joke": the intent model's person guess loses to a clearly off-topic line."""
    pipeline = _pipeline(tmp_path)
    joke = replace(
        _person_guess(0.64), smalltalk=SmallTalkGuess(smalltalk.ELSEWHERE, 0.74, human_score=0.4)
    )
    reading, _ = await pipeline._read(DialogueState(), "tell me a joke", joke)
    assert not reading.human
    # The same guess with nothing off-topic about it is still taken as a request.
    plain = replace(joke, smalltalk=SmallTalkGuess(smalltalk.ELSEWHERE, 0.3, human_score=0.4))
    reading, _ = await pipeline._read(DialogueState(), "get me someone", plain)
    assert reading.human
