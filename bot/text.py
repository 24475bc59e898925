"""The form of customer and agent text that patterns read.

Text from the public is hostile: whitespace padded between trigger words, zero-width and bidi
characters hiding inside words, fullwidth or styled lookalike letters, megabytes where a
sentence was expected. :func:`for_patterns` gives patterns a bounded, predictable view of it:

- at most ``limit`` characters (cut before and after NFKC, which can lengthen text);
- NFKC compatibility folding, so lookalikes (fullwidth "ORD-123", mathematical bold "order")
  read as plain letters and digits: the result is only read by patterns, never stored or
  shown as the customer's words;
- invisible characters removed: control characters, Unicode format characters (zero-width
  space and joiners, bidi controls, soft hyphen, tags), variation selectors;
- every whitespace run (newlines included) collapsed to a single space, ends stripped.

What is stored stays the original text; only the values patterns pick out of this view (an
order number, an email address) travel further.
"""

from __future__ import annotations

import re
import unicodedata

# Patterns read at most this much of one text: twice the widget's default message cap.
PATTERN_CHARS = 8000

# Control characters that are not whitespace (whitespace ones become a space below), the
# Unicode format characters (category Cf), variation selectors and the combining grapheme joiner.
_INVISIBLE = re.compile(
    "[\x00-\x08\x0e-\x1b\x7f-\x84\x86-\x9f"
    "\u00ad\u034f\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u180e"
    "\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufe00-\ufe0f\ufeff\ufff9-\ufffb"
    "\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0001\U000e0020-\U000e007f\U000e0100-\U000e01ef]+"
)
# A run of whitespace is matched once from its first character: each character is read once.
_SPACES = re.compile(r"\s++")


def for_patterns(text: str, limit: int = PATTERN_CHARS) -> str:
    """``text`` as patterns should read it: bounded, folded, visible, single-spaced."""
    text = text[:limit]
    if not text.isascii() and not unicodedata.is_normalized("NFKC", text):
        text = unicodedata.normalize("NFKC", text)[:limit]
    return _SPACES.sub(" ", _INVISIBLE.sub("", text)).strip()
