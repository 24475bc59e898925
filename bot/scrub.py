"""Personal data out of training text: emails, card, account and phone numbers become
typed placeholders (``{{Email}}``, ``{{Card Number}}``...), so no customer's data is baked
into a model trained on the logs.

The built-in patterns run in a fixed order (most specific first: an email before a phone
number, a Luhn-valid card number before an account or phone number); configured patterns
(``[learning] scrub_patterns``) run after them. Placeholders already in the text, such as
Bitext's ``{{Order Number}}``, are left alone.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from bot.errors import InputError

EMAIL = "Email"
CARD = "Card Number"
ACCOUNT = "Account Number"
PHONE = "Phone Number"

_EMAIL = re.compile(
    r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"
)
# 13 to 19 digits, optionally grouped by single spaces or dashes.
_CARD = re.compile(r"(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w-])")
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b")
# "account number 12345678", "acct #: 1234-5678", "a/c 00123456": the digits after the word.
_ACCOUNT_WORD = re.compile(
    r"(?i)\b(?:account|acct|a/c)(?:\s+(?:number|no\.?|num(?:ber)?))?\s*(?:is\s+)?(?:[:#]\s*)*"
    r"(?P<num>\d[\d -]{4,30}\d)"
)
_PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,5}(?:[ .-]?\d{2,5}){1,4}(?![\w-])"
)
_DATE = re.compile(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{2,4}")


def _digits(s: str) -> str:
    return re.sub(r"\D", "", s)


def luhn_valid(number: str) -> bool:
    digits = [int(c) for c in _digits(number)]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _is_phone(s: str) -> bool:
    return 7 <= len(_digits(s)) <= 15 and not _DATE.fullmatch(s.strip())


@dataclass(frozen=True, slots=True)
class Rule:
    """One kind of personal data: ``pattern`` (group ``num`` if only part is replaced) and an
    optional ``accept`` check on the matched text."""

    name: str
    pattern: re.Pattern[str]
    accept: Callable[[str], bool] | None = None


BUILTIN: tuple[Rule, ...] = (
    Rule(EMAIL, _EMAIL),
    Rule(CARD, _CARD, luhn_valid),
    Rule(ACCOUNT, _IBAN),
    Rule(ACCOUNT, _ACCOUNT_WORD),
    Rule(PHONE, _PHONE, _is_phone),
)


@dataclass(frozen=True, slots=True)
class Scrubbed:
    text: str
    found: Mapping[str, int] = field(default_factory=dict)  # placeholder name -> count


class Scrubber:
    """Replaces personal data with ``{{Name}}`` placeholders; see the module docstring."""

    def __init__(self, extra: Mapping[str, str] | None = None, disable: Iterable[str] = ()) -> None:
        off = set(disable)
        unknown = off - {r.name for r in BUILTIN}
        if unknown:
            raise InputError(
                f"learning.scrub_disable: unknown pattern(s) {', '.join(sorted(unknown))}; "
                f"expected some of {', '.join(sorted({r.name for r in BUILTIN}))}"
            )
        rules = [r for r in BUILTIN if r.name not in off]
        for name, pattern in (extra or {}).items():
            try:
                rules.append(Rule(name, re.compile(pattern)))
            except re.error as exc:
                raise InputError(f"learning.scrub_patterns[{name!r}]: bad regex: {exc}") from None
        self.rules = tuple(rules)

    @classmethod
    def from_settings(cls, learning: object) -> Scrubber:
        return cls(
            getattr(learning, "scrub_patterns", None), getattr(learning, "scrub_disable", ())
        )

    def scrub(self, text: str) -> Scrubbed:
        found: Counter[str] = Counter()
        for rule in self.rules:
            text = self._apply(rule, text, found)
        return Scrubbed(text, dict(found))

    def __call__(self, text: str) -> str:
        return self.scrub(text).text

    @staticmethod
    def _apply(rule: Rule, text: str, found: Counter[str]) -> str:
        placeholder = "{{" + rule.name + "}}"

        def replace(m: re.Match[str]) -> str:
            group = "num" if "num" in m.re.groupindex else 0
            value = m.group(group)
            if rule.accept is not None and not rule.accept(value):
                return m.group(0)
            found[rule.name] += 1
            if group == 0:
                return placeholder
            start, end = m.span(group)
            whole = m.group(0)
            offset = m.start(0)
            return whole[: start - offset] + placeholder + whole[end - offset :]

        return rule.pattern.sub(replace, text)
