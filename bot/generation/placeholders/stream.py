"""Filling slots in a streamed reply, holding back only the text a slot may still change."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from bot.generation.placeholders.filling import SlotFiller
from bot.generation.placeholders.slots import MAX_SLOTS, SLOT, slot_name
from bot.generation.placeholders.wording import NEAR_CHARS, tidy_inner

# Streamed previews hold back this many words: rewording before a slot reaches back at most a
# few words ("the order number #" + slot), so it can still change them.
STREAM_LAG_WORDS = 8
# The text after an emptied slot shows which article fits before it: a whole word, or none.
_WORD_AFTER = re.compile(r"""\s*+(?:['"][^A-Za-z]|['"]?[A-Za-z]+[^A-Za-z]|[^A-Za-z\s'"])""")


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
        self._slots = SlotFiller(history, facts)
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
        if not force and len(after) < NEAR_CHARS and not _WORD_AFTER.match(after):
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
            self._window = tidy_inner(self._window)
        else:
            head = tidy_inner(self._window[: self._agree_at])
            self._window, self._agree_at = head + self._window[self._agree_at :], len(head)
        window = self._window
        cut = len(window)
        if not everything:
            starts = [m.start() for m in re.finditer(r"\S+", window)]
            cut = starts[-STREAM_LAG_WORDS] if len(starts) >= STREAM_LAG_WORDS else 0
            # Rewording reaches back at most NEAR_CHARS: older text can go, however few
            # words it holds (a run without spaces would otherwise be re-read on every piece).
            cut = max(cut, len(window) - NEAR_CHARS)
            if self._agree_at >= 0:
                cut = min(cut, max(0, window.rfind(" ", 0, self._agree_at)))
        out, self._window = window[:cut], window[cut:]
        if self._agree_at >= 0:
            self._agree_at -= cut
        self._sent = (self._sent + out)[-NEAR_CHARS:]
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
            name = slot_name(m) if m is not None else None
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
