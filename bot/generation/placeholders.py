"""Template slots such as ``{{Order Number}}``: fill them from the conversation or reword.

Answers mined from past conversations hold slots (391 kinds in the Bitext data). A reply that
reaches a customer must never contain ``{{``. :func:`fill` replaces each slot with

- the value the customer gave in the conversation (order, invoice and tracking numbers,
  emails, phone numbers, names, amounts), the most recent mention winning;
- a fact the company configured (``facts``, e.g. ``{"Customer Support Hours": "9-5"}``);
- otherwise a phrase that reads naturally without it ("your order", "our website", the label
  of a menu item), and for values only the customer knows a question asking for them.

:class:`PlaceholderStream` does the same on streamed text, holding back only the pieces that
may be part of a slot.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

SLOT = re.compile(r"\{\{\s*([^{}]{1,80}?)\s*\}\}")

# Values a customer gives: (slot names they fill, pattern with the value in group "v").
_ID = r"#?\s*(?P<v>[A-Z]{0,5}[-#]?\d[\w-]{2,})"
_CUSTOMER_VALUES: tuple[tuple[tuple[str, ...], re.Pattern[str]], ...] = (
    (
        ("order number", "order id", "purchase number"),
        re.compile(
            r"\b(?:order|purchase)\s*(?:number|no\.?|num|id|#)?\s*(?:is|:|=)?\s*" + _ID,
            re.I,
        ),
    ),
    (
        ("tracking number", "tracking id"),
        re.compile(r"\btracking\s*(?:number|no\.?|num|id|code|#)?\s*(?:is|:|=)?\s*" + _ID, re.I),
    ),
    (
        ("invoice number", "invoice id", "bill number"),
        re.compile(r"\b(?:invoice|bill)\s*(?:number|no\.?|num|id|#)?\s*(?:is|:|=)?\s*" + _ID, re.I),
    ),
    (
        ("email", "email address", "client email", "customer email"),
        re.compile(r"(?P<v>[\w.+-]+@[\w-]+(?:\.[\w-]+)+)"),
    ),
    (
        ("phone number", "client phone number", "customer phone number", "phone"),
        re.compile(r"(?<![\w#])(?P<v>\+?\d[\d\s().-]{6,}\d)(?!\w)"),
    ),
    (
        ("person name", "client name", "full name", "customer name", "name"),
        re.compile(
            r"\b(?i:my name is|this is|i am|i'm)\s+(?P<v>[A-Z][a-z'-]+(?:\s+[A-Z][a-z'-]+)?)"
        ),
    ),
    (
        ("refund amount", "money amount", "amount"),
        re.compile(r"(?P<cur>[$€£])\s?(?P<v>\d+(?:[.,]\d{1,2})?)"),
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

# How to read on when a slot has no value. Keys are lower-cased slot names.
_REWORD = {
    "order number": "your order",
    "invoice number": "your invoice",
    "tracking number": "your tracking number",
    "account type": "",
    "account category": "",
    "profile type": "",
    "date range": "a date range",
    "delivery city": "your city",
    "delivery country": "your country",
    "refund amount": "the refund amount",
    "money amount": "the amount",
    "currency symbol": "",
    "salutation": "",
    "person name": "the person named",
    "client name": "your name",
    "client first name": "",
    "client last name": "",
    "full name": "your name",
    "website url": "our website",
    "login page url": "the login page",
    "account recovery page url": "the account recovery page",
    "account recovery page": "the account recovery page",
    "customer support hours": "our business hours",
    "customer support phone number": "our customer support phone line",
    "toll-free number": "our toll-free number",
    "customer support email": "our customer support email",
    "online company portal info": "our website",
    "store location": "our store",
    "company name": "our company",
    "online order interaction": "Orders",
    "company account": "your account",
}

# Nouns a slot usually follows ("order {{Order Number}}"), dropped with the slot when missing.
_LEAD_NOUN = re.compile(
    r"(?:\b(?:the|your|my|this|that)\s+)?\b(?:order|purchase|invoice|bill|tracking)\s+"
    r"(?:(?:number|no\.?|id)\s+)?(?:#\s*)?$",
    re.I,
)


def _norm(slot: str) -> str:
    return re.sub(r"[\s_]+", " ", slot).strip().lower()


def extract_values(turns: Iterable[str]) -> dict[str, str]:
    """Slot values (lower-cased slot name → value) found in customer text, newest winning."""
    values: dict[str, str] = {}
    for text in turns:
        for slots, pattern in _CUSTOMER_VALUES:
            matches = list(pattern.finditer(text))
            if not matches:
                continue
            m = matches[-1]
            value = m.group("v").strip()
            for slot in slots:
                values[slot] = value
            if "cur" in pattern.groupindex:
                values["currency symbol"] = m.group("cur")
            if "name" in slots:
                first, _, last = value.partition(" ")
                values["client first name"] = first
                values["client last name"] = last or first
    return values


def _customer_turns(history: Sequence[tuple[str, str]] | Sequence[str]) -> list[str]:
    turns: list[str] = []
    for turn in history:
        if isinstance(turn, str):
            turns.append(turn)
        elif turn[0] == "customer":
            turns.append(turn[1])
    return turns


def _missing_phrase(slot: str) -> str:
    key = _norm(slot)
    if key in _REWORD:
        return _REWORD[key]
    if any(w in key for w in ("url", "website", "portal", "page")):
        return "our website"
    if "email" in key and any(w in key for w in ("support", "service", "company", "assist")):
        return "our support email"
    if ("phone" in key or "number" in key) and any(
        w in key for w in ("support", "service", "company", "assist", "toll")
    ):
        return "our customer support phone line"
    if "hours" in key:
        return "our business hours"
    if "name" in key:
        return ""
    # Most other slots name a menu item or button in quotes ('{{Settings}}'): its label reads well.
    return slot.strip().replace("_", " ")


def fill(
    text: str,
    history: Sequence[tuple[str, str]] | Sequence[str] = (),
    *,
    facts: Mapping[str, str] | None = None,
    ask: bool = True,
) -> tuple[str, list[str]]:
    """Fill the ``{{Slot}}`` placeholders of ``text``; return the text and the missing slots.

    ``history`` is the conversation as ``(role, text)`` turns (only customer turns are read)
    or plain customer texts. Missing slots that only the customer can give are asked for at the
    end when ``ask`` is true. The result never contains ``{{`` or ``}}``.
    """
    values = extract_values(_customer_turns(history))
    known = {_norm(k): v for k, v in (facts or {}).items()}
    missing: list[str] = []
    out: list[str] = []
    pos = 0
    for m in SLOT.finditer(text):
        slot = m.group(1)
        key = _norm(slot)
        before = text[pos : m.start()]
        value = values.get(key) or known.get(key)
        if value is None:
            if slot not in missing:
                missing.append(slot)
            phrase = _missing_phrase(slot)
            lead = (
                _LEAD_NOUN.search(before) if key in _REWORD and phrase.startswith("your") else None
            )
            if lead is not None:
                before = before[: lead.start()]
            value = phrase
        out.append(before)
        out.append(value)
        pos = m.end()
    out.append(text[pos:])
    result = tidy("".join(out))
    if ask:
        wanted = [ASK_FOR[_norm(s)] for s in missing if _norm(s) in ASK_FOR]
        wanted = list(dict.fromkeys(wanted))
        if wanted:
            if len(wanted) > 1:
                wanted = [", ".join(wanted[:-1]) + " and " + wanted[-1]]
            question = f"Could you please share {wanted[0]}?"
            if question.lower() not in result.lower():
                result = f"{result.rstrip()}\n\n{question}" if result.strip() else question
    return result, missing


def tidy(text: str) -> str:
    """Remove stray braces and the gaps an emptied slot leaves behind."""
    text = text.replace("{{", "").replace("}}", "")
    text = re.sub(r"(['\"])\s*\1", "", text)  # an emptied quoted label: ''
    text = re.sub(r"[ \t]{2,}", " ", text)
    text = re.sub(r"[ \t]+([,.;:!?)])", r"\1", text)
    text = re.sub(r"\b(a|an|the|your|our)\s+(\1)\b", r"\1", text, flags=re.I)
    text = re.sub(r",\s*([,.!?])", r"\1", text)
    return text.strip()


class PlaceholderStream:
    """Filter streamed text pieces so no slot reaches the customer half-written.

    Text is passed through as it comes, except from a ``{`` on, which is held until the slot
    closes (then filled) or proves not to be one. :meth:`finish` flushes what is held.
    """

    def __init__(
        self,
        history: Sequence[tuple[str, str]] | Sequence[str] = (),
        *,
        facts: Mapping[str, str] | None = None,
    ) -> None:
        self._history = history
        self._facts = facts
        self._held = ""
        self.missing: list[str] = []

    def _fill(self, text: str) -> str:
        filled, missing = fill(text, self._history, facts=self._facts, ask=False)
        self.missing.extend(s for s in missing if s not in self.missing)
        # fill() strips; keep the surrounding spaces of streamed pieces.
        lead = text[: len(text) - len(text.lstrip())]
        trail = text[len(text.rstrip()) :]
        return lead + filled + trail if filled else lead

    def feed(self, piece: str) -> str:
        text = self._held + piece
        self._held = ""
        start = text.find("{")
        if start < 0:
            return text.replace("}}", "")
        head, rest = text[:start], text[start:]
        out = [head]
        while rest:
            if not rest.startswith("{"):
                nxt = rest.find("{")
                if nxt < 0:
                    out.append(rest.replace("}}", ""))
                    rest = ""
                    break
                out.append(rest[:nxt])
                rest = rest[nxt:]
                continue
            if len(rest) == 1:
                break  # a lone "{" may start a slot: hold it
            if rest[1] != "{":
                out.append(rest[0])
                rest = rest[1:]
                continue
            close = rest.find("}}")
            if close < 0:
                if len(rest) > 90 or "\n" in rest:  # too long to be a slot
                    out.append(rest.replace("{{", ""))
                    rest = ""
                break
            out.append(self._fill(rest[: close + 2]))
            rest = rest[close + 2 :]
        self._held = rest
        return "".join(out)

    def finish(self) -> str:
        held, self._held = self._held, ""
        return held.replace("{", "").replace("}", "")
