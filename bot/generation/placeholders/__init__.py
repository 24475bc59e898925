"""Template slots such as ``{{Order Number}}``: fill them from the conversation or reword.

Answers mined from past conversations hold slots (391 kinds in the Bitext data). A reply that
reaches a customer must never contain ``{{``. :func:`fill` replaces each slot with

- the value the customer gave in the conversation (order, invoice and tracking numbers,
  emails, phone numbers, names, amounts), the most recent mention winning;
- a fact the company configured (``facts``, e.g. ``{"Customer Support Hours": "9-5"}``);
- otherwise a phrase that reads naturally without it ("your order", "our website", the label
  of a menu item), and for values only the customer knows a question asking for them.

The phrase is fitted to the words around the slot (:mod:`.wording`). Only values the customer
must give count as missing; company facts and labels are reworded silently.

:class:`PlaceholderStream` does the same on streamed text, holding back only the pieces that
may be part of a slot.

One module per job: :mod:`.values` pulls values out of the conversation, :mod:`.wording`
rewords the English around missing slots, :mod:`.filling` puts the two together for a whole
text and :mod:`.stream` for streamed text; :mod:`.slots` says what a slot is.
"""

from __future__ import annotations

from bot.generation.placeholders.filling import fill
from bot.generation.placeholders.slots import MAX_SLOTS, SLOT
from bot.generation.placeholders.stream import STREAM_LAG_WORDS, PlaceholderStream
from bot.generation.placeholders.values import (
    ASK_FOR,
    customer_gives,
    extract_values,
    given_values,
)
from bot.generation.placeholders.wording import tidy

__all__ = [
    "ASK_FOR",
    "MAX_SLOTS",
    "SLOT",
    "STREAM_LAG_WORDS",
    "PlaceholderStream",
    "customer_gives",
    "extract_values",
    "fill",
    "given_values",
    "tidy",
]
