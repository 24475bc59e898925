"""Values the bot asked for: find them in the customer's next message and check their shape.

A value may come alone ("ORD-5521"), in a sentence ("my order number is 5521") or with noise
("sure, ORD-5521 thanks!"). The message is split into whitespace tokens and each token, cut
to a bounded length, is checked on its own, so the work is linear in the message and no
pattern ever runs over the whole customer text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from bot.errors import SettingsError

MAX_TOKEN = 64  # longer tokens are no identifier or address anyone types
_PUNCT = ".,;:!?()[]{}<>\"'`*“”‘’"

# Words that may surround a value without making the message a new question.
_FILLER = frozenset(
    "a an the my our your its it's it is was here there this that please pls plz sure ok okay "
    "yes yeah yep um uh hmm well so and number no num nr id order purchase invoice bill "
    "tracking reference ref code email address e-mail mail thanks thank you thx cheers "
    "sorry oh of for to in at from i i'm im me be should".split()
)


@dataclass(frozen=True, slots=True)
class SlotSpec:
    """How to ask for one slot and check the value given.

    ``kind``: ``identifier`` (a token with a digit: order, invoice, tracking numbers),
    ``email``, or ``text`` (a few words, e.g. a city). ``pattern`` optionally narrows an
    identifier; it is matched against one token with RE2 (linear time) where installed.
    """

    phrase: str  # "your order number": how the question names it
    kind: str = "identifier"
    example: str = "ORD-12345"
    pattern: str = ""
    min_digits: int = 3

    def __post_init__(self) -> None:
        if self.kind not in ("identifier", "email", "text"):
            raise SettingsError(f"slot kind must be identifier, email or text, got {self.kind!r}")
        if self.pattern:
            _compile(self.pattern)


def _compile(pattern: str) -> re.Pattern[str]:
    try:
        import re2  # type: ignore[import-not-found]

        return re2.compile(pattern)
    except ImportError:
        pass
    except Exception as exc:  # re2.error
        raise SettingsError(f"slot pattern {pattern!r} is not valid: {exc}") from None
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise SettingsError(f"slot pattern {pattern!r} is not valid: {exc}") from None


DEFAULT_SLOTS: Mapping[str, SlotSpec] = {
    "order number": SlotSpec("your order number"),
    "invoice number": SlotSpec("your invoice number", example="INV-12345"),
    "tracking number": SlotSpec("your tracking number", example="1Z999AA10123456784", min_digits=4),
    "email": SlotSpec("your email address", kind="email", example="name@example.com"),
    "delivery city": SlotSpec("the delivery city", kind="text", example="Berlin"),
    "delivery country": SlotSpec("the delivery country", kind="text", example="France"),
}


@dataclass(frozen=True, slots=True)
class SlotReading:
    """What a customer's message gives for the slot the bot asked for."""

    value: str | None  # a valid value, as typed
    attempted: bool  # it looks like an answer to the question (a bad value, or a bare token)
    mostly_value: bool  # little besides the value: never read as a new question


def norm_slot(slot: str) -> str:
    return " ".join(slot.replace("_", " ").split()).lower()


def _tokens(text: str) -> list[str]:
    return [t.strip(_PUNCT) for t in text[:4000].split()]


def _identifier(token: str, spec: SlotSpec, compiled: re.Pattern[str] | None) -> bool:
    if not token or len(token) > MAX_TOKEN:
        return False
    token = token.lstrip("#")
    if sum(c.isdigit() for c in token) < spec.min_digits:
        return False
    if not all(c.isalnum() or c in "-_/#." for c in token):
        return False
    return compiled is None or compiled.fullmatch(token) is not None


def _email(token: str) -> bool:
    if len(token) > 254 or token.count("@") != 1:
        return False
    local, domain = token.split("@")
    labels = domain.split(".")
    return (
        0 < len(local) <= 64
        and len(labels) >= 2
        and all(labels)
        and labels[-1].isalpha()
        and len(labels[-1]) >= 2
        and all(c.isalnum() or c in "-" for label in labels for c in label)
    )


def read_slot(text: str, slot: str, specs: Mapping[str, SlotSpec] = DEFAULT_SLOTS) -> SlotReading:
    """Find the value of ``slot`` in ``text`` (the message right after the bot asked)."""
    spec = specs.get(norm_slot(slot))
    tokens = [t for t in _tokens(text) if t]
    if spec is None or not tokens:
        return SlotReading(None, False, False)
    if spec.kind == "text":
        words = [t for t in tokens if t.lower() not in _FILLER]
        value = " ".join(words)
        ok = 0 < len(words) <= 4 and len(value) <= 60 and not any(c.isdigit() for c in value)
        return SlotReading(value if ok else None, len(tokens) <= 6, ok)
    compiled = _compile(spec.pattern) if spec.pattern else None
    found: str | None = None
    for token in tokens:
        if spec.kind == "email" and _email(token):
            found = token
            break
        if spec.kind == "identifier" and _identifier(token, spec, compiled):
            found = token.lstrip("#")
            break
    rest = [t for t in tokens if t.lstrip("#") != found and t.lower() not in _FILLER]
    mostly = len(rest) <= 2
    # A short message with a digit or an "@" in it answers the question, even with a bad value.
    attempted = found is not None or (
        len(rest) <= 1 and any(any(c.isdigit() or c == "@" for c in t) for t in tokens)
    )
    return SlotReading(found, attempted, mostly and found is not None)


def spec_for(slot: str, specs: Mapping[str, SlotSpec] = DEFAULT_SLOTS) -> SlotSpec | None:
    return specs.get(norm_slot(slot))
