"""Does a column that is to be kept look identifying? Reasons name the column and the kind, never a value.

A column named with ``--keep`` is refused when any of its values is a date, free text (more than three words or
32 characters), a titled person name ("Dr Smith"), a phone- or ID-like string, or equal to a name (or name part)
found in the table's name columns or to an id of the id column; a
column whose name says age is refused unless given with ``--age-cols`` (where ages over 89 are capped). Each
refusal can be overridden per column (``--force-keep``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

#: Longer than this, or with more words than :data:`MAX_WORDS`, a value is free text.
MAX_TEXT_CHARS = 32
MAX_WORDS = 3
_DATE = re.compile(
    r"\b(\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}|(19|20)\d{2}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01]))\b"
    r"|\b(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.? \d{1,2}\b",
    re.IGNORECASE,
)
_LONG_DIGITS = re.compile(r"\d[\d\s().+-]{5,}\d")  # phone numbers, MRNs, social security numbers
_MIXED_ID = re.compile(r"(?=(?:[^\d]*\d){4})(?=.*[A-Za-z])[A-Za-z0-9-]{6,}")  # MRN123456, AB-1234-X
_AGE_NAME = re.compile(r"(^|_|\b)age(s|_?years?|_?yrs?)?($|_|\b)", re.IGNORECASE)
_TITLED_NAME = re.compile(r"\b(?i:dr|mr|mrs|ms|miss|prof|sr|nurse)\.?\s+[A-Z]")
_NAME_PARTS = re.compile(r"[\^\s,]+")
_MEASUREMENT = re.compile(r"[-+]?\d*\.\d+([eE][-+]?\d+)?")  # a number with a decimal point is a measurement


def name_values(rows: list[dict[str, str]], name_columns: Iterable[str]) -> set[str]:
    """Case-folded names and name parts (3 or more characters) of the table's name columns."""
    out: set[str] = set()
    for col in name_columns:
        for row in rows:
            value = (row.get(col) or "").strip()
            if len(value) >= 3:
                out.add(value.casefold())
            out.update(p.casefold() for p in _NAME_PARTS.split(value) if len(p) >= 3)
    return out


def looks_like_age(column: str) -> bool:
    return bool(_AGE_NAME.search(column))


def value_reason(value: str, names: set[str]) -> str | None:
    """Why ``value`` looks identifying, or ``None``."""
    value = value.strip()
    if not value:
        return None
    if _DATE.search(value):
        return "holds dates (shift them with --date-cols)"
    if len(value) > MAX_TEXT_CHARS or len(value.split()) > MAX_WORDS:
        return "holds long free text"
    if _TITLED_NAME.search(value):
        return "holds person names"
    if not _MEASUREMENT.fullmatch(value) and (_LONG_DIGITS.search(value) or _MIXED_ID.fullmatch(value)):
        return "holds phone- or ID-like values"
    if value.casefold() in names or any(p.casefold() in names for p in _NAME_PARTS.split(value) if len(p) >= 3):
        return "holds values equal to a name or an id in the table"
    return None


def header_reason(column: str) -> str | None:
    """Why a column *name* looks like a value (a table without a header row makes its first patient the
    column names, which would then be printed), or ``None``."""
    column = column.strip()
    if _DATE.search(column):
        return "holds a date"
    if _TITLED_NAME.search(column):
        return "holds a person's name"
    if not _MEASUREMENT.fullmatch(column) and (_LONG_DIGITS.search(column) or _MIXED_ID.fullmatch(column)):
        return "holds a phone- or ID-like value"
    return None


def column_reason(column: str, values: Iterable[str], names: set[str]) -> str | None:
    """Why kept ``column`` looks identifying (the first reason found), or ``None``."""
    if looks_like_age(column):
        return "looks like an age: pass it with --age-cols to cap ages over 89 at 90"
    for value in values:
        reason = value_reason(value, names)
        if reason:
            return reason
    return None
