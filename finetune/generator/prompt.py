"""The prompt: system policy, retrieved answers, intent and the last turns, in the chat template.

Training (``finetune/generator/train.py``) and the server (``bot/generation``) build prompts
here, from the same :class:`ReplyRequest`, so the model is tuned on exactly what it sees when
it answers. When the prompt does not fit the context budget
(``context_tokens - max_new_tokens``), the oldest conversation turns go first, then the
lowest-ranked retrieved answers, and last the start of the customer's message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from bot.errors import InputError
from retrieval.hit import Hit

ROLES = ("customer", "bot", "agent")


@dataclass(frozen=True, slots=True)
class ReplyRequest:
    """One customer message to answer, with the conversation so far and what retrieval found.

    ``history`` holds earlier turns, oldest first, as ``(role, text)`` with role one of
    ``customer``, ``bot`` or ``agent``; it does not include ``message`` itself.
    """

    message: str
    history: tuple[tuple[str, str], ...] = ()
    hits: tuple[Hit, ...] = ()
    intent: str | None = None
    max_new_tokens: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.message, str) or not self.message.strip():
            raise InputError("ReplyRequest.message must be a non-empty string")
        for i, turn in enumerate(self.history):
            if len(turn) != 2 or turn[0] not in ROLES:
                raise InputError(
                    f"ReplyRequest.history[{i}]: expected (role, text) with role in {ROLES}, "
                    f"got {turn!r}"
                )
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise InputError("ReplyRequest.max_new_tokens must be at least 1")


POLICY = (
    "You are the customer support assistant of {company}. Reply to the customer's last "
    "message in the friendly, professional voice of the team. Use only the facts in the "
    "reference answers below; do not promise refunds, prices, dates or outcomes they do not "
    "state. If they do not answer the question, say that a colleague will follow up. Keep "
    "placeholders such as {{{{Order Number}}}} exactly as written: they are filled in later."
)

_SPEAKER = {"customer": "user", "bot": "assistant", "agent": "assistant"}


class ChatTokenizer(Protocol):
    def apply_chat_template(self, conversation: Any, **kwargs: Any) -> Any: ...


@dataclass(frozen=True, slots=True)
class PromptConfig:
    company_name: str = "our company"
    context_tokens: int = 2048
    max_new_tokens: int = 160
    # Three answers carry nearly all the useful wording; each extra one costs prefill time.
    max_sources: int = 3
    # Bitext answers run to 300 words; the first 120 hold the substance.
    source_max_words: int = 120
    max_turns: int = 8


@dataclass(frozen=True, slots=True)
class Prompt:
    ids: list[int]
    messages: list[dict[str, str]]
    sources: tuple[int, ...]
    dropped_turns: int


def _clip_words(text: str, limit: int) -> str:
    words = text.split(" ")
    if len(words) <= limit:
        return text
    return " ".join(words[:limit]).rstrip() + " ..."


def system_message(request: ReplyRequest, config: PromptConfig, n_sources: int) -> str:
    parts = [POLICY.format(company=config.company_name)]
    hits = request.hits[:n_sources]
    if hits:
        parts.append("Reference answers, most relevant first:")
        for i, hit in enumerate(hits, 1):
            answer = _clip_words(hit.answer.strip(), config.source_max_words)
            parts.append(
                f"[{i}] (relevance {hit.score:.2f}) Question: {hit.question.strip()}\n"
                f"Answer: {answer}"
            )
    else:
        parts.append("Reference answers: none were found.")
    if request.intent:
        parts.append(f"Predicted intent of the customer: {request.intent}")
    return "\n\n".join(parts)


def build_messages(
    request: ReplyRequest,
    config: PromptConfig,
    *,
    n_sources: int | None = None,
    n_turns: int | None = None,
    message: str | None = None,
) -> list[dict[str, str]]:
    n_sources = config.max_sources if n_sources is None else n_sources
    n_turns = config.max_turns if n_turns is None else n_turns
    turns = request.history[len(request.history) - n_turns :] if n_turns else ()
    messages = [{"role": "system", "content": system_message(request, config, n_sources)}]
    for role, text in turns:
        speaker = _SPEAKER[role]
        if messages[-1]["role"] == speaker:  # templates expect alternating turns
            messages[-1] = {"role": speaker, "content": messages[-1]["content"] + "\n" + text}
        else:
            messages.append({"role": speaker, "content": text})
    text = request.message if message is None else message
    if messages[-1]["role"] == "user":
        messages[-1] = {"role": "user", "content": messages[-1]["content"] + "\n" + text}
    else:
        messages.append({"role": "user", "content": text})
    return messages


def _encode(tokenizer: ChatTokenizer, messages: list[dict[str, str]]) -> list[int]:
    out = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    if isinstance(out, dict) or hasattr(out, "keys"):
        out = out["input_ids"]
    return list(out)


class PromptBuilder:
    """Turn a :class:`ReplyRequest` into token ids that fit the context budget."""

    def __init__(self, tokenizer: ChatTokenizer, config: PromptConfig) -> None:
        self.tokenizer = tokenizer
        self.config = config

    @property
    def budget(self) -> int:
        return max(16, self.config.context_tokens - self.config.max_new_tokens)

    def build(self, request: ReplyRequest, *, max_new_tokens: int | None = None) -> Prompt:
        budget = self.budget
        if max_new_tokens is not None:
            budget = max(16, self.config.context_tokens - max_new_tokens)
        n_turns = min(len(request.history), self.config.max_turns)
        n_sources = min(len(request.hits), self.config.max_sources)
        while True:
            messages = build_messages(request, self.config, n_sources=n_sources, n_turns=n_turns)
            ids = _encode(self.tokenizer, messages)
            if len(ids) <= budget:
                break
            if n_turns > 0:
                n_turns -= 1
            elif n_sources > 1:
                n_sources -= 1
            else:
                ids, messages = self._cut_message(request, n_sources, budget)
                break
        return Prompt(
            ids=ids,
            messages=messages,
            sources=tuple(h.pair_id for h in request.hits[:n_sources]),
            dropped_turns=len(request.history) - n_turns,
        )

    def _cut_message(
        self, request: ReplyRequest, n_sources: int, budget: int
    ) -> tuple[list[int], list[dict[str, str]]]:
        """Keep the end of an over-long message (the question is usually last)."""
        words = request.message.split()
        lo, hi = 0, len(words)
        best: tuple[list[int], list[dict[str, str]]] | None = None
        while lo <= hi:  # the fewest words dropped that still fit
            mid = (lo + hi) // 2
            text = " ".join(words[mid:]) or "..."
            messages = build_messages(
                request, self.config, n_sources=n_sources, n_turns=0, message=text
            )
            ids = _encode(self.tokenizer, messages)
            if len(ids) <= budget:
                best, hi = (ids, messages), mid - 1
            else:
                lo = mid + 1
        if best is None:
            messages = build_messages(request, self.config, n_sources=0, n_turns=0, message="...")
            best = (_encode(self.tokenizer, messages)[-budget:], messages)
        return best
