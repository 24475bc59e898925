"""What a slot is: ``{{``, a name, ``}}``; and the key its name is looked up by."""

from __future__ import annotations

import re

# A slot: "{{", its name (whitespace around it ignored), "}}". The name is checked in Python
# (see :func:`slot_name`): braces end the class, so each "{{" scans up to the next brace once.
SLOT = re.compile(r"\{\{([^{}]*+)\}\}")
SLOT_NAME_CHARS = 80
# A reply holds a few slots; past this many the rest are left as text (braces removed), so
# a hostile draft full of "{{x}}" costs no more than a long plain one.
MAX_SLOTS = 64


def slot_name(m: re.Match[str]) -> str | None:
    """The name of the slot ``m`` found, or None where the braces hold no slot name."""
    name = m.group(1).strip()
    return name if 0 < len(name) <= SLOT_NAME_CHARS else None


def slot_key(slot: str) -> str:
    """The name a slot is looked up by: lower case, underscores and runs of spaces as one space."""
    return re.sub(r"[\s_]+", " ", slot).strip().lower()
