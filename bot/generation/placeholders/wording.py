"""Rewording English around a slot that has no value, and asking for what only the customer
knows.

The phrase is fitted to the words around the slot: a slot that only identifies something the
sentence just named ("our website at {{Website URL}}", "the invoice with the number
#{{Invoice Number}}") is dropped with its link words instead of repeating the name, and
determiners, articles and modifiers are not doubled ("to your our website").
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from bot.generation.placeholders.slots import slot_key
from bot.generation.placeholders.values import ASK_FOR

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
NEAR_CHARS = 300  # how much text before a slot its rewording looks at
_CLAUSE_ENDS = ".!?;,\n"


def _missing_phrase(slot: str) -> str:
    key = slot_key(slot)
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
    phrase = ASK_FOR.get(slot_key(slot), phrase)
    if tail.group("q") or tail.group(0).startswith("'"):
        return before, _DETERMINER.sub("", phrase)
    return before[: tail.start()], phrase


def agree_article(before: str, after: str) -> str:
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


def reword(before: str, slot: str) -> tuple[str, str, bool]:
    """Reword a slot that has no value, given all the text before it.

    Returns the (possibly shortened) text before, the phrase to insert, and whether a quote
    right after the slot must go too (the slot and its opening quote were dropped).
    """
    key = slot_key(slot)
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


def ask_for(result: str, missing: Sequence[str]) -> str:
    """Append a question for the missing values only the customer knows.

    Values the reply already asks for in a question of its own ("Could you please provide
    your tracking number or your order number?") are not asked for twice.
    """
    wanted = [ASK_FOR[slot_key(s)] for s in missing if slot_key(s) in ASK_FOR]
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
    return tidy_inner(text).strip()


def tidy_inner(text: str) -> str:
    """:func:`tidy` without the strip, for a piece in the middle of a streamed reply."""
    text = text.replace("{{", "").replace("}}", "")
    text = re.sub(r"(['\"])\s*+\1", "", text)  # an emptied quoted label: ''
    text = re.sub(r"[ \t]{2,}", " ", text)
    text = re.sub(r"(?<![ \t])[ \t]++([,.;:!?)])", r"\1", text)
    text = re.sub(r"\b(a|an|the|your|our)\s++(\1)\b", r"\1", text, flags=re.I)
    text = re.sub(r",\s*+([,.!?])", r"\1", text)
    return text
