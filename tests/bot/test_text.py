"""The view of customer text that patterns read (bot.text.for_patterns)."""

from __future__ import annotations

import sys
import unicodedata

from bot.text import PATTERN_CHARS, for_patterns


def test_whitespace_runs_collapse_to_one_space():
    text = "cancel \t\n\r my\u00a0\u3000\u2028 order" + " " * 500 + "please  "
    assert for_patterns(text) == "cancel my order please"


def test_every_invisible_character_is_removed():
    invisible = "".join(
        chr(cp)
        for cp in range(sys.maxunicode + 1)
        if unicodedata.category(chr(cp)) in ("Cc", "Cf") and not chr(cp).isspace()
    )
    assert len(invisible) > 150
    assert for_patterns(f"or{invisible}der") == "order"
    assert for_patterns("a\u200b\u200c\u200d\u2060\ufeff\u202e\ufe0fb") == "ab"


def test_lookalike_letters_and_digits_fold_to_plain_ones():
    assert for_patterns("\uff2f\uff32\uff24\uff0d\uff11\uff12\uff13") == "ORD-123"
    assert for_patterns("\U0001d428\U0001d42b\U0001d41d\U0001d41e\U0001d42b") == "order"
    assert for_patterns("ﬁle caf\u0065\u0301") == "file café"


def test_length_is_capped_before_and_after_folding():
    assert len(for_patterns("a" * (PATTERN_CHARS + 10))) == PATTERN_CHARS
    # U+FDFA folds to 18 characters: the result is cut again.
    assert len(for_patterns("\ufdfa" * PATTERN_CHARS)) <= PATTERN_CHARS
    assert for_patterns("word " * 10, limit=12) == "word word wo"


def test_plain_text_reads_as_typed():
    typed = "Hi, my order #ORD-1 (10.5 kg) arrived 3 days late; €12,50 back?"
    assert for_patterns(typed) == typed
