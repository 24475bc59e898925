"""Template slots such as ``{{Order Number}}``: fill them from the conversation or reword.

Answers mined from past conversations hold slots (391 kinds in the Bitext data). A reply that
reaches a customer must never contain ``{{``. :func:`fill` replaces each slot with

- the value the customer gave in the conversation (order, invoice and tracking numbers,
  emails, phone numbers, names, amounts), the most recent mention winning;
- a fact the company configured (``facts``, e.g. ``{"Customer Support Hours": "9-5"}``);
- otherwise a phrase that reads naturally without it ("your order", "our website", the label
  of a menu item), and for values only the customer knows a question asking for them.

The phrase is fitted to the words around the slot: a slot that only identifies something the
sentence just named ("our website at {{Website URL}}", "the invoice with the number
#{{Invoice Number}}") is dropped with its link words instead of repeating the name, and
determiners, articles and modifiers are not doubled ("to your our website"). Only values the
customer must give count as missing; company facts and labels are reworded silently.

:class:`PlaceholderStream` does the same on streamed text, holding back only the pieces that
may be part of a slot.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache

from bot.text import PATTERN_CHARS, for_patterns

# A slot: "{{", its name (whitespace around it ignored), "}}". The name is checked in Python
# (see :func:`_slot_name`): braces end the class, so each "{{" scans up to the next brace once.
SLOT = re.compile(r"\{\{([^{}]*+)\}\}")
SLOT_NAME_CHARS = 80
# A reply holds a few slots; past this many the rest are left as text (braces removed), so
# a hostile draft full of "{{x}}" costs no more than a long plain one.
MAX_SLOTS = 64

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
    "store location": "our stores",
    "company name": "our company",
    "online order interaction": "Orders",
    "company account": "your account",
    "number of days": "a few",
}

# Nouns a slot usually follows ("order {{Order Number}}"), dropped with the slot when missing.
_LEAD_NOUN = re.compile(
    r"(?:\b(?:the|your|my|this|that)\s++)?\b(?:order|purchase|invoice|bill|tracking)\s++"
    r"(?:(?:number|no\.?|id)\s++)?(?:#\s*+)?$",
    re.I,
)

# Words that name the same thing as a reworded phrase (keyed by the phrase without its
# determiner). When the text right before a missing slot already names it ("visit our website
# at {{Website URL}}"), the slot only identified that thing, so it is dropped rather than
# reworded into "our website at our website".
_SAME_THING = {
    "order": r"orders?|purchases?",
    "invoice": r"invoices?|bills?",
    "tracking number": r"tracking(?:\s+(?:number|id|code))?",
    "website": r"web\s*sites?|sites?|web\s*pages?|portals?",
    "login page": r"log-?in\s+pages?|sign-?in\s+pages?",
    "account recovery page": r"(?:account\s+)?recovery\s+pages?",
    "business hours": r"hours",
    "customer support phone line": (
        r"(?:tele)?phone(?:\s+(?:line|number))?|hotline|helpline|phone\s+support|number"
    ),
    "toll-free number": r"toll-free(?:\s+(?:number|line))?|hotline|helpline|phone",
    "customer support email": r"e-?mail(?:\s+address)?",
    "support email": r"e-?mail(?:\s+address)?",
    "stores": r"stores?|shops?",
    "company": r"company",
    "refund amount": r"refunds?|reimbursements?|rebates?|compensations?|payments?|amount",
    "amount": r"amount|sum|payments?",
}

# Words allowed between the earlier mention and the slot ("order with the number #").
_LINK_WORDS = (
    r"at|on|in|into|to|for|of|with|via|by|from|under|using|through|the|a|an|our|your|its|this|"
    r"that|number|numbered|no|id|reference|associated|linked|tied|bearing|having|named|called|"
    r"platform"
)
_DETERMINER = re.compile(r"^(?:the|a|an|your|our|my|this|that)\s+", re.I)
_TAIL_DETERMINER = re.compile(
    r"(?:\b(?:the|a|an|your|our|my|this|that|its|their)|(?<=\w)'s)(?P<gap>\s*+)(?P<q>[\"']?)$",
    re.I,
)
# A customer value asked for right before, joined by "or"/"and" to the slot.
_ASKED_JUST_BEFORE = re.compile(
    r"\b(?:" + "|".join(map(re.escape, ASK_FOR.values())) + r")\s++(?:or|and)\s++$", re.I
)
_NEAR_CHARS = 300  # how much text before a slot its rewording looks at
# Streamed previews hold back this many words: rewording before a slot reaches back at most a
# few words ("the order number #" + slot), so it can still change them.
STREAM_LAG_WORDS = 8
# The text after an emptied slot shows which article fits before it: a whole word, or none.
_WORD_AFTER = re.compile(r"""\s*+(?:['"][^A-Za-z]|['"]?[A-Za-z]+[^A-Za-z]|[^A-Za-z\s'"])""")
_CLAUSE_ENDS = ".!?;,\n"


def _slot_name(m: re.Match[str]) -> str | None:
    """The name of the slot ``m`` found, or None where the braces hold no slot name."""
    name = m.group(1).strip()
    return name if 0 < len(name) <= SLOT_NAME_CHARS else None


def _norm(slot: str) -> str:
    return re.sub(r"[\s_]+", " ", slot).strip().lower()


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


# Slots a customer value fills that say what they are owed, not who they are: a draft may
# not repeat these on the customer's word alone (see bot.generation.grounding).
_CLAIM_SLOTS = frozenset({"refund amount", "money amount", "amount", "currency symbol"})


def given_values(turns: Iterable[str]) -> list[str]:
    """The values customer ``turns`` give that identify them or their order (order, invoice
    and tracking numbers, email, phone, name): what a draft may repeat without a source."""
    values = extract_values(turns)
    return list(dict.fromkeys(v for k, v in values.items() if k not in _CLAIM_SLOTS))


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
    if "hotline" in key or "helpline" in key:
        return "our customer support phone line"
    if ("phone" in key or "number" in key) and any(
        w in key for w in ("support", "service", "company", "assist", "toll", "claims", "contact")
    ):
        return "our customer support phone line"
    if "hours" in key:
        return "our business hours"
    if "name" in key:
        return ""
    # Most other slots name a menu item or button in quotes ('{{Settings}}'): its label reads well.
    return slot.strip().replace("_", " ")


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
    key = _norm(slot)
    if key in _CUSTOMER_SLOTS:
        return True
    return bool(_CUSTOMER_ID.search(key)) and not _COMPANY_WORDS.search(key)


def _clause(text: str) -> int:
    """Where the clause that ends ``text`` starts: after the last sentence end or comma."""
    return max(text.rfind(c) for c in _CLAUSE_ENDS) + 1


def _already_named(before: str, phrase: str) -> re.Match[str] | None:
    """The earlier mention of the thing ``phrase`` names, if only link words follow it.

    The match starts at the first such mention of the clause ("your *order* with the order
    number "), so cutting ``before`` at ``m.end("head")`` drops the links and repeats. A comma
    right before the slot makes it an apposition ("our website, {{Website URL}}"), not a new
    clause.
    """
    same = _SAME_THING.get(_DETERMINER.sub("", phrase).lower())
    if same is None:
        return None
    start = _clause(re.sub(r",\s*+$", "", before))
    tail = re.compile(
        rf"(?P<head>\b(?:{same})\b)(?:[\s#:'\"]*+\b(?:{_LINK_WORDS}|{same})\b)*[\s#:'\"]*+,?\s*+$",
        re.I,
    )
    return tail.search(before, start)


def _trim_repeated_modifiers(before: str, phrase: str) -> str:
    """Drop the phrase's leading modifiers that the clause just said.

    "our customer support team at {{Customer Support Phone Number}}" reads "... at our phone
    line", not "... at our customer support phone line".
    """
    det = _DETERMINER.match(phrase)
    if det is None:
        return phrase
    said = {w.lower() for w in re.findall(r"[\w-]+", before[_clause(before) :])[-6:]}
    words = phrase[det.end() :].split()
    while len(words) > 2 and words[0].lower() in said:
        words.pop(0)
    return det.group(0) + " ".join(words)


def _merge_determiners(before: str, phrase: str, slot: str) -> tuple[str, str]:
    """Keep one determiner where the text and the phrase both bring one ("the your order").

    A customer value after a determiner names the value itself ("provide the {{Order
    Number}}"), so it becomes "your order number". The phrase's own determiner wins ("to your
    {{Online Company Portal Info}}" → "to our website"), unless a quote or possessive sits
    in between ('our platform\'s "{{Login Page URL}}"'), where the phrase loses its own.
    """
    tail = _TAIL_DETERMINER.search(before)
    det = _DETERMINER.match(phrase)
    if tail is None or det is None:
        return before, phrase
    phrase = ASK_FOR.get(_norm(slot), phrase)
    if tail.group("q") or tail.group(0).startswith("'"):
        return before, _DETERMINER.sub("", phrase)
    return before[: tail.start()], phrase


def _agree_article(before: str, after: str) -> str:
    """Make an "a"/"an" that ends ``before`` fit the word now after it.

    An emptied or reworded slot changes that word: "a {{Account Type}} account" reads
    "an account", "a '{{Online Order Interaction}}' button" reads "an 'Orders' button".
    """
    article = re.search(r"\b(a|an)(\s++['\"]?)$", before, re.I)
    word = re.match(r"\s*+['\"]?([A-Za-z]+)", after)
    if article is None or word is None:
        return before
    vowel = word.group(1)[0].lower() in "aeio" and not word.group(1).lower().startswith("one")
    wanted = "an" if vowel else "a"
    if word.group(1)[0].lower() == "u" or article.group(1).lower() == wanted:
        return before  # "a user" and "an update" both occur: leave "u" words as written
    if article.group(1)[0].isupper():
        wanted = wanted.capitalize()
    return before[: article.start()] + wanted + article.group(2)


def _reword(before: str, slot: str) -> tuple[str, str, bool]:
    """Reword a slot that has no value, given all the text before it.

    Returns the (possibly shortened) text before, the phrase to insert, and whether a quote
    right after the slot must go too (the slot and its opening quote were dropped).
    """
    key = _norm(slot)
    phrase = _missing_phrase(slot)
    if not phrase:
        return before, "", False
    if key in _REWORD and phrase.startswith("your"):
        lead = _LEAD_NOUN.search(before)
        if lead is not None:
            before = before[: lead.start()]
    if re.search(r"[$€£]$", before) and phrase[:1].isalpha():
        before = before[:-1]  # "$" before a reworded amount: "of $the refund amount"
    named = _already_named(before, phrase)
    if named is not None:
        opened_quote = before[named.end("head") :].rstrip()[-1:] in ("'", '"')
        return before[: named.end("head")], "", opened_quote
    if key in ASK_FOR and _ASKED_JUST_BEFORE.search(before):
        phrase = ASK_FOR[key]  # "your tracking number or {{Order Number}}": the same form
    before, phrase = _merge_determiners(before, phrase, slot)
    return before, _trim_repeated_modifiers(before, phrase), False


class _Slots:
    """Fill slots one at a time, given the text before each: the step :func:`fill` repeats."""

    def __init__(
        self,
        history: Sequence[tuple[str, str]] | Sequence[str],
        facts: Mapping[str, str] | None,
    ) -> None:
        self.values = extract_values(_customer_turns(history))
        self.known = {_norm(k): v for k, v in (facts or {}).items()}
        self.missing: list[str] = []

    def fill(self, before: str, slot: str) -> tuple[str, str | None, bool]:
        """The text before (possibly reworded), the slot's text, and whether a quote right
        after the slot must go. The slot's text is None when it was emptied: then the article
        before it must agree with what follows (:func:`_agree_article`)."""
        key = _norm(slot)
        value = self.values.get(key) or self.known.get(key)
        if value is not None:
            return before, value, False
        if customer_gives(slot) and slot not in self.missing:
            self.missing.append(slot)
        # The rewording reads only the last words before the slot: cut them off once, so its
        # patterns anchored at the end do not rescan the whole reply for every slot.
        kept, near = before[:-_NEAR_CHARS], before[-_NEAR_CHARS:]
        near, value, drop_quote = _reword(near, slot)
        if value:
            return kept + _agree_article(near, value), value, drop_quote
        return kept + near, None, drop_quote

    @staticmethod
    def agree(before: str, after: str) -> str:
        """``before`` with its last article made to fit ``after`` (once a slot was emptied)."""
        return before[:-_NEAR_CHARS] + _agree_article(before[-_NEAR_CHARS:], after)


def fill(
    text: str,
    history: Sequence[tuple[str, str]] | Sequence[str] = (),
    *,
    facts: Mapping[str, str] | None = None,
    ask: bool = True,
) -> tuple[str, list[str]]:
    """Fill the ``{{Slot}}`` placeholders of ``text``; return the text and the missing slots.

    ``history`` is the conversation as ``(role, text)`` turns (only customer turns are read)
    or plain customer texts. The missing slots are those whose value only the customer can
    give (see :func:`customer_gives`) and did not; the ones with a question in ``ASK_FOR`` are
    asked for at the end when ``ask`` is true. The result never contains ``{{`` or ``}}``.
    """
    slots = _Slots(history, facts)
    done = ""
    pos = 0
    found = 0
    for m in SLOT.finditer(text):
        name = _slot_name(m)
        if name is None:
            continue
        found += 1
        if found > MAX_SLOTS:
            break
        before, value, drop_quote = slots.fill(done + text[pos : m.start()], name)
        pos = m.end()
        if drop_quote and text[pos : pos + 1] in ("'", '"'):
            pos += 1
        if value is None:
            before, value = slots.agree(before, text[pos:]), ""
        done = before + value
    done += text[pos:]
    result = tidy(done)
    if ask:
        result = _ask_for(result, slots.missing)
    return result, slots.missing


def _ask_for(result: str, missing: Sequence[str]) -> str:
    """Append a question for the missing values only the customer knows.

    Values the reply already asks for in a question of its own ("Could you please provide
    your tracking number or your order number?") are not asked for twice.
    """
    wanted = [ASK_FOR[_norm(s)] for s in missing if _norm(s) in ASK_FOR]
    if not wanted:
        return result
    sentences = re.split(r"(?<=[.!?\n])", result)
    questions = " ".join(q for q in sentences if q.endswith("?")).lower()
    wanted = [w for w in dict.fromkeys(wanted) if w not in questions]
    if not wanted:
        return result
    if len(wanted) > 1:
        wanted = [", ".join(wanted[:-1]) + " and " + wanted[-1]]
    question = f"Could you please share {wanted[0]}?"
    return f"{result.rstrip()}\n\n{question}" if result.strip() else question


def tidy(text: str) -> str:
    """Remove stray braces and the gaps an emptied slot leaves behind."""
    return _tidy_inner(text).strip()


def _tidy_inner(text: str) -> str:
    """:func:`tidy` without the strip, for a piece in the middle of a streamed reply."""
    text = text.replace("{{", "").replace("}}", "")
    text = re.sub(r"(['\"])\s*+\1", "", text)  # an emptied quoted label: ''
    text = re.sub(r"[ \t]{2,}", " ", text)
    text = re.sub(r"(?<![ \t])[ \t]++([,.;:!?)])", r"\1", text)
    text = re.sub(r"\b(a|an|the|your|our)\s++(\1)\b", r"\1", text, flags=re.I)
    text = re.sub(r",\s*+([,.!?])", r"\1", text)
    return text


class PlaceholderStream:
    """Fill slots in streamed text pieces so the preview reads as the final reply will.

    A slot is held from its ``{`` until it closes (then filled) or proves not to be one. Filling
    may reword the words right before a slot ("your order number {{Order Number}}" loses the
    repeat), so the last :data:`STREAM_LAG_WORDS` words are held back too, until no slot can
    change them; :meth:`finish` flushes everything.
    """

    def __init__(
        self,
        history: Sequence[tuple[str, str]] | Sequence[str] = (),
        *,
        facts: Mapping[str, str] | None = None,
    ) -> None:
        self._slots = _Slots(history, facts)
        self._held = ""  # raw text from a "{" that may open a slot
        self._window = ""  # filled text not yet passed on: a later slot may reword it
        self._sent = ""  # the end of what was passed on, which rewording reads
        self._drop_quote = False  # a quote right after the last slot must go
        self._agree_at = -1  # where an emptied slot was: its article waits for the next word
        self._slot_count = 0

    @property
    def missing(self) -> list[str]:
        return self._slots.missing

    def _text(self, text: str) -> None:
        if self._drop_quote and text:
            self._drop_quote = False
            if text[0] in ("'", '"'):
                text = text[1:]
        self._window += text.replace("}}", "")

    def _slot(self, slot: str) -> None:
        self._settle_article(force=True)
        before, value, self._drop_quote = self._slots.fill(self._sent + self._window, slot)
        self._reworded(before)
        if value is None:
            self._agree_at = len(self._window)
        else:
            self._window += value

    def _settle_article(self, *, force: bool = False) -> None:
        """Fit the article before an emptied slot to the word after it, once that word is in."""
        if self._agree_at < 0:
            return
        after = self._window[self._agree_at :]
        if not force and len(after) < _NEAR_CHARS and not _WORD_AFTER.match(after):
            return
        head = self._slots.agree(self._sent + self._window[: self._agree_at], after)
        self._reworded(head, after)
        self._agree_at = -1

    def _reworded(self, text: str, after: str = "") -> None:
        """Hold ``text`` (what was sent plus the held words, reworded) and ``after`` instead,
        unless the rewording would unsay text already sent: then keep what is held."""
        if text.startswith(self._sent):
            self._window = text[len(self._sent) :] + after

    def _release(self, everything: bool = False) -> str:
        self._settle_article(force=everything)
        if self._agree_at < 0:
            self._window = _tidy_inner(self._window)
        else:
            head = _tidy_inner(self._window[: self._agree_at])
            self._window, self._agree_at = head + self._window[self._agree_at :], len(head)
        window = self._window
        cut = len(window)
        if not everything:
            starts = [m.start() for m in re.finditer(r"\S+", window)]
            cut = starts[-STREAM_LAG_WORDS] if len(starts) >= STREAM_LAG_WORDS else 0
            # Rewording reaches back at most _NEAR_CHARS: older text can go, however few
            # words it holds (a run without spaces would otherwise be re-read on every piece).
            cut = max(cut, len(window) - _NEAR_CHARS)
            if self._agree_at >= 0:
                cut = min(cut, max(0, window.rfind(" ", 0, self._agree_at)))
        out, self._window = window[:cut], window[cut:]
        if self._agree_at >= 0:
            self._agree_at -= cut
        self._sent = (self._sent + out)[-_NEAR_CHARS:]
        return out

    def feed(self, piece: str) -> str:
        text = self._held + piece
        self._held = ""
        while text:
            start = text.find("{")
            if start < 0:
                self._text(text)
                break
            self._text(text[:start])
            rest = text[start:]
            if len(rest) == 1:
                self._held = rest  # a lone "{" may start a slot: hold it
                break
            if rest[1] != "{":
                self._text(rest[0])
                text = rest[1:]
                continue
            close = rest.find("}}")
            if close < 0:
                if len(rest) > 90 or "\n" in rest:  # too long to be a slot
                    self._text(rest.replace("{{", ""))
                else:
                    self._held = rest
                break
            m = SLOT.fullmatch(rest[: close + 2])
            name = _slot_name(m) if m is not None else None
            if name is None or self._slot_count >= MAX_SLOTS:  # "{{ }}", braces inside, too many
                self._text(rest[: close + 2].replace("{{", ""))
            else:
                self._slot_count += 1
                self._slot(name)
            text = rest[close + 2 :]
        return self._release()

    def finish(self) -> str:
        held, self._held = self._held, ""
        self._text(held.replace("{", "").replace("}", ""))
        return self._release(everything=True)
