"""Fast multi-pattern search (Aho–Corasick via ``pyahocorasick``) with word-boundary checks.

A hit counts only when the characters just outside it do not continue it: a pattern ending in a digit
must not be followed by a digit, one ending in a letter not by a letter (and likewise at the start). This
keeps ``123456`` from matching inside a 39-digit pseudonymous UID and ``anne`` inside ``annealing``.
"""

from __future__ import annotations

from collections import Counter

import ahocorasick

ENCODINGS = ("utf-8", "latin-1", "utf-16-le")


def _continues(edge: str, neighbour: str) -> bool:
    return (edge.isdigit() and neighbour.isdigit()) or (edge.isalpha() and neighbour.isalpha())


def _continues_word(edge: str, neighbour: str) -> bool:
    return neighbour.isalnum()


class Matcher:
    """Compiled once for a pattern set; ``find`` returns pattern -> hit count in a (case-folded) text.

    With ``whole_words`` a hit needs a non-alphanumeric character (or the text's edge) on both sides: short
    names (``li``) must not match inside ``lipid`` nor inside a token like ``x7li2``.
    """

    def __init__(
        self, patterns: list[str] | set[str] | dict[str, object], *, min_length: int = 1, whole_words: bool = False
    ):
        self.continues = _continues_word if whole_words else _continues
        self.automaton = ahocorasick.Automaton()
        self.max_length = 0
        for pattern in patterns:
            if len(pattern) >= min_length:
                self.automaton.add_word(pattern, pattern)
                self.max_length = max(self.max_length, len(pattern))
        self.empty = self.max_length == 0
        if not self.empty:
            self.automaton.make_automaton()

    def find(self, text: str, *, folded: bool = False) -> Counter[str]:
        """Hits in ``text``; case-folds it first unless ``folded``."""
        hits: Counter[str] = Counter()
        if self.empty or not text:
            return hits
        if not folded:
            text = fold(text)
        for end, pattern in self.automaton.iter(text):
            start = end - len(pattern) + 1
            if start > 0 and self.continues(pattern[0], text[start - 1]):
                continue
            if end + 1 < len(text) and self.continues(pattern[-1], text[end + 1]):
                continue
            hits[pattern] += 1
        return hits

    def find_bytes(self, data: bytes) -> dict[str, Counter[str]]:
        """Hits in ``data`` decoded as each of ``ENCODINGS`` (UTF-16 at both byte alignments)."""
        found: dict[str, Counter[str]] = {}
        for encoding in ENCODINGS:
            if encoding == "utf-16-le":
                hits = self.find(data.decode(encoding, errors="replace")) if len(data) > 1 else Counter()
                if len(data) > 2:
                    hits += self.find(data[1:].decode(encoding, errors="replace"))
            else:
                hits = self.find(data.decode(encoding, errors="replace"))
            if hits:
                found[encoding] = hits
        return found


def fold(text: str) -> str:
    """Case-fold like the patterns (``values.normalise``); boundaries are checked on the folded text."""
    return text.casefold()
