"""Filling the slots of a whole text: values first, then company facts, then rewording."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from bot.generation.placeholders.slots import MAX_SLOTS, SLOT, slot_key, slot_name
from bot.generation.placeholders.values import customer_gives, customer_turns, extract_values
from bot.generation.placeholders.wording import (
    NEAR_CHARS,
    agree_article,
    ask_for,
    reword,
    tidy,
)


class SlotFiller:
    """Fill slots one at a time, given the text before each: the step :func:`fill` repeats."""

    def __init__(
        self,
        history: Sequence[tuple[str, str]] | Sequence[str],
        facts: Mapping[str, str] | None,
    ) -> None:
        self.values = extract_values(customer_turns(history))
        self.known = {slot_key(k): v for k, v in (facts or {}).items()}
        self.missing: list[str] = []

    def fill(self, before: str, slot: str) -> tuple[str, str | None, bool]:
        """The text before (possibly reworded), the slot's text, and whether a quote right
        after the slot must go. The slot's text is None when it was emptied: then the article
        before it must agree with what follows (:func:`agree_article`)."""
        key = slot_key(slot)
        value = self.values.get(key) or self.known.get(key)
        if value is not None:
            return before, value, False
        if customer_gives(slot) and slot not in self.missing:
            self.missing.append(slot)
        # The rewording reads only the last words before the slot: cut them off once, so its
        # patterns anchored at the end do not rescan the whole reply for every slot.
        kept, near = before[:-NEAR_CHARS], before[-NEAR_CHARS:]
        near, value, drop_quote = reword(near, slot)
        if value:
            return kept + agree_article(near, value), value, drop_quote
        return kept + near, None, drop_quote

    @staticmethod
    def agree(before: str, after: str) -> str:
        """``before`` with its last article made to fit ``after`` (once a slot was emptied)."""
        return before[:-NEAR_CHARS] + agree_article(before[-NEAR_CHARS:], after)


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
    slots = SlotFiller(history, facts)
    done = ""
    pos = 0
    found = 0
    for m in SLOT.finditer(text):
        name = slot_name(m)
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
        result = ask_for(result, slots.missing)
    return result, slots.missing
