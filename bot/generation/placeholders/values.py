"""Pulling slot values out of the conversation: what the customer gave, and which slots only
the customer can fill."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache

from bot.generation.placeholders.slots import slot_key
from bot.text import PATTERN_CHARS, for_patterns

# Values a customer gives: (slot names they fill, pattern with the value in group "v"). They
# read text from bot.text.for_patterns (single-spaced), and each is linear on any text anyway:
# whitespace quantifiers are possessive (nothing after them starts with whitespace), runs are
# matched from their first character only, and the phone number's length is bounded.
_ID = r"#?\s*+(?P<v>[A-Z]{0,5}[-#]?\d[\w-]{2,})"
_KEY = r"\s*+(?:number|no\.?|num|id|#)?\s*+(?:is|:|=)?\s*+"
_CUSTOMER_VALUES: tuple[tuple[tuple[str, ...], re.Pattern[str]], ...] = (
    (
        ("order number", "order id", "purchase number"),
        re.compile(r"\b(?:order|purchase)" + _KEY + _ID, re.I),
    ),
    (
        ("tracking number", "tracking id"),
        re.compile(r"\btracking\s*+(?:number|no\.?|num|id|code|#)?\s*+(?:is|:|=)?\s*+" + _ID, re.I),
    ),
    (
        ("invoice number", "invoice id", "bill number"),
        re.compile(r"\b(?:invoice|bill)" + _KEY + _ID, re.I),
    ),
    (
        ("email", "email address", "client email", "customer email"),
        re.compile(r"(?<![\w.+-])(?P<v>[\w.+-]++@[\w-]++(?:\.[\w-]++)++)"),
    ),
    (
        ("phone number", "client phone number", "customer phone number", "phone"),
        re.compile(r"(?<![\w#])(?P<v>\+?\d[\d\s().-]{6,24}\d)(?!\w)"),
    ),
    (
        ("person name", "client name", "full name", "customer name", "name"),
        re.compile(
            r"\b(?i:my name is|this is|i am|i'm)\s++(?P<v>[A-Z][a-z'-]++(?:\s++[A-Z][a-z'-]++)?)"
        ),
    ),
    (
        ("refund amount", "money amount", "amount"),
        # "$1,000.50", "$45.20", "€12,50": thousands groups only when a comma is followed by 3.
        re.compile(
            r"(?P<cur>[$€£])\s?(?P<v>\d{1,3}(?:,\d{3})++(?:\.\d{1,2})?|\d++(?:[.,]\d{1,2})?)"
        ),
    ),
)

# Slots only the customer can fill: when missing, the reply asks for them.
ASK_FOR = {
    "order number": "your order number",
    "invoice number": "your invoice number",
    "tracking number": "your tracking number",
    "delivery city": "the delivery city",
    "delivery country": "the delivery country",
}


def extract_values(turns: Iterable[str]) -> dict[str, str]:
    """Slot values (lower-cased slot name → value) found in customer text, newest winning.

    Patterns read each text as :func:`bot.text.for_patterns` gives it (its first
    ``PATTERN_CHARS`` characters, folded and single-spaced).
    """
    values: dict[str, str] = {}
    for text in turns:
        values.update(_values_in(text[:PATTERN_CHARS]))
    return values


# A reply fills several texts against the same conversation, and each message re-reads the
# earlier turns: each customer text is read once.
@lru_cache(maxsize=256)
def _values_in(text: str) -> tuple[tuple[str, str], ...]:
    """The (slot, value) pairs one customer text gives, in the order they are set."""
    view = for_patterns(text)
    found: list[tuple[str, str]] = []
    for slots, pattern in _CUSTOMER_VALUES:
        m = None
        for m in pattern.finditer(view):  # noqa: B007 - the last mention wins
            pass
        if m is None:
            continue
        value = m.group("v").strip()
        found += [(slot, value) for slot in slots]
        if "cur" in pattern.groupindex:
            found.append(("currency symbol", m.group("cur")))
        if "name" in slots:
            first, _, last = value.partition(" ")
            found += [("client first name", first), ("client last name", last or first)]
    return tuple(found)


# The slot a value stands for in Bitext-style logs, by the first slot name of its pattern.
_AS_SLOT = {
    "order number": "{{Order Number}}",
    "tracking number": "{{Tracking Number}}",
    "invoice number": "{{Invoice Number}}",
    "email": "{{Email}}",
    "phone number": "{{Phone Number}}",
    "person name": "{{Person Name}}",
    "refund amount": "{{Refund Amount}}",
}


@lru_cache(maxsize=256)
def as_placeholders(text: str) -> str:
    """``text`` (as :func:`bot.text.for_patterns` reads it) with each customer value replaced by
    its slot: "cancel order #5521" → "cancel order {{Order Number}}"; ``text`` itself, unchanged,
    when it holds no value.

    Logs mined into the index hold questions in that form, and a made-up number only pulls a
    question away from them; the original text is kept everywhere else.
    """
    view = for_patterns(text)
    spans: list[tuple[int, int, str]] = []
    for slots, pattern in _CUSTOMER_VALUES:
        for m in pattern.finditer(view):
            start = m.start("cur") if "cur" in pattern.groupindex else m.start("v")
            if start and view[start - 1] == "#":
                start -= 1  # "#5521": the sign goes with the number
            spans.append((start, m.end("v"), _AS_SLOT[slots[0]]))
    out, at = [], 0
    for start, end, slot in sorted(spans):
        if start >= at:  # the first of overlapping spans wins
            out += [view[at:start], slot]
            at = end
    return "".join(out) + view[at:] if spans else text


# Slots a customer value fills that say what they are owed, not who they are: a draft may
# not repeat these on the customer's word alone (see bot.generation.grounding).
_CLAIM_SLOTS = frozenset({"refund amount", "money amount", "amount", "currency symbol"})


def given_values(turns: Iterable[str]) -> list[str]:
    """The values customer ``turns`` give that identify them or their order (order, invoice
    and tracking numbers, email, phone, name): what a draft may repeat without a source."""
    values = extract_values(turns)
    return list(dict.fromkeys(v for k, v in values.items() if k not in _CLAIM_SLOTS))


def customer_turns(history: Sequence[tuple[str, str]] | Sequence[str]) -> list[str]:
    turns: list[str] = []
    for turn in history:
        if isinstance(turn, str):
            turns.append(turn)
        elif turn[0] == "customer":
            turns.append(turn[1])
    return turns


# Slots whose value only the customer can give, beyond those :func:`extract_values` finds.
_CUSTOMER_SLOTS = frozenset(
    {slot for slots, _ in _CUSTOMER_VALUES for slot in slots}
    | set(ASK_FOR)
    | {"client first name", "client last name", "client full name", "username"}
)
# Words that make a slot the company's ("Customer Support Phone Number"), not the customer's.
_COMPANY_WORDS = re.compile(
    r"\b(?:support|service|assist\w*|company|business|toll-free|hotline|helpline|claims?|"
    r"complaints?|feedback|reviews?|store|carrier|representative|team|registration|payment issue|"
    r"page|url|website|portal)\b"
)
_CUSTOMER_ID = re.compile(
    r"\b(?:number|id|identifier|email|email address|shipping address|zip code)$"
)


def customer_gives(slot: str) -> bool:
    """Whether ``slot`` holds a value only the customer can give (order number, email, name).

    Only these are reported missing: company facts and menu labels ("Custom Order Details")
    are reworded and need nothing from the customer.
    """
    key = slot_key(slot)
    if key in _CUSTOMER_SLOTS:
        return True
    return bool(_CUSTOMER_ID.search(key)) and not _COMPANY_WORDS.search(key)
