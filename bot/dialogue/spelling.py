"""Misspelt words read as the word meant before the encoders read a message.

Customers type "cancle my pucrhase"; an intent model trained on clean questions reads each
typo as a word it never saw and turns unsure, so the bot clarifies or says what it can do
where a person would simply have understood. :class:`Speller` reads such a word as the
nearest known one, with SymSpell (``symspellpy``) over its bundled English frequency list and
the words of the deployment's own known questions ("freemium" is not English, but it is a word
of this business).

Only what cannot be a real word is changed: a word of letters only, ``MIN_LETTERS`` to
``MAX_LETTERS`` long, that neither list holds, and that is one edit (a letter added, dropped,
changed or two swapped) from a known word; a word of the known questions is such a word too
when the word it is one edit from is ``TYPO_RATIO`` times as frequent there. Anything else
(names, numbers, codes, short slang such as "ur" or "pls") is read as typed. The result is
only what the encoders read; the stored text is the customer's.
"""

from __future__ import annotations

import functools
import importlib.resources
import re
import threading
from collections import Counter
from collections.abc import Iterable

# Shorter words are too often slang or abbreviations one edit from an unrelated word.
MIN_LETTERS = 5
# A word of the known questions one edit from an English word this many times as frequent
# there is a typo the logs kept, not a word of the business.
TYPO_RATIO = 20
# Longer runs of letters are no misspelt word (the longest English words are shorter).
MAX_LETTERS = 30
_WORD = re.compile(r"[A-Za-z]+")  # a run of letters: no nesting, nothing to backtrack over
_DICTIONARY = "frequency_dictionary_en_82_765.txt"
_lock = threading.Lock()


@functools.cache
def _english() -> object:
    """SymSpell over the bundled English list, loaded once per process (about 2 s)."""
    from symspellpy import SymSpell

    speller = SymSpell(max_dictionary_edit_distance=1, prefix_length=7)
    path = importlib.resources.files("symspellpy") / _DICTIONARY
    speller.load_dictionary(str(path), term_index=0, count_index=1)
    return speller


class Speller:
    """Corrects typos against English and ``domain_words`` (the known questions' words)."""

    def __init__(self, domain_words: Iterable[str]) -> None:
        with _lock:
            self._symspell = _english()
        self._domain = Counter(w.lower() for w in domain_words)

    @classmethod
    def from_questions(cls, questions: Iterable[str]) -> Speller:
        return cls(w for q in questions for w in _WORD.findall(q))

    @functools.lru_cache(maxsize=65536)  # noqa: B019 (one speller per index version)
    def _meant(self, word: str) -> str | None:
        from symspellpy import Verbosity

        found = self._symspell.lookup(word, Verbosity.TOP, max_edit_distance=1)  # type: ignore[attr-defined]
        return found[0].term if found else None

    def _fix(self, word: str) -> str | None:
        """The word meant by ``word`` (lower case), or None to read it as typed."""
        if not MIN_LETTERS <= len(word) <= MAX_LETTERS or word in self._symspell.words:  # type: ignore[attr-defined]
            return None
        meant = self._meant(word)
        if meant is None:
            return None
        # Logs hold typos too ("purcahse" a few times beside "purchase" thousands): a word of
        # the known questions is read as typed only when it is not a rare variant of another.
        if self._domain[meant] < TYPO_RATIO * self._domain[word]:
            return None
        return meant

    def correct(self, text: str) -> str:
        """``text`` with each misspelt word replaced by the word meant, the rest as typed."""

        def fix(m: re.Match[str]) -> str:
            word = m.group(0)
            return self._fix(word.lower()) or word

        return _WORD.sub(fix, text)
