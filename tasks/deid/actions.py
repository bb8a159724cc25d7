"""Pure functions behind the Annex E action codes (no I/O, no dataset walking).

Action codes of PS3.15 Table E.1-1:

- ``X`` remove; ``Z`` replace with a zero-length value; ``D`` replace with a non-identifying dummy
  of the same VR; ``U`` replace a UID with a keyed one; ``K`` keep; ``C`` clean (dates shifted,
  text reduced to what is known not to identify, ages capped, AE titles pseudonymised).
- Combinations where the standard lets the choice depend on the IOD (``X/Z``, ``X/D``, ``Z/D``, ``X/Z/D``) are
  chosen per instance from the Type of the attribute in the file's own IOD (:mod:`tasks.deid.iod`);
  ``X/Z/U*`` sequences are kept and their items de-identified (UIDs replaced), so references stay valid.
"""

from __future__ import annotations

import datetime as _dt
import re

SINGLE_CODES = frozenset({"X", "Z", "D", "U", "K", "C"})
COMBINATIONS = frozenset({"X/Z", "X/D", "Z/D", "X/Z/D", "X/Z/U*"})


# --- D: dummy values per VR ------------------------------------------------------------------------
DUMMY_TEXT = "ANONYMIZED"
DUMMY_BY_VR: dict[str, object] = {
    "PN": "ANONYMOUS",
    "LO": DUMMY_TEXT,
    "SH": DUMMY_TEXT,
    "LT": DUMMY_TEXT,
    "ST": DUMMY_TEXT,
    "UT": DUMMY_TEXT,
    "UC": DUMMY_TEXT,
    "CS": "ANONYMIZED",
    "AE": "ANONYMOUS",
    "DA": "19000101",
    "DT": "19000101000000",
    "TM": "000000",
    "AS": "000D",
    "IS": "0",
    "DS": "0",
    "UR": "ANONYMIZED",  # a relative URI reference that points nowhere
    "US": 0,
    "SS": 0,
    "UL": 0,
    "SL": 0,
    "UV": 0,
    "SV": 0,
    "FL": 0.0,
    "FD": 0.0,
    "AT": 0,
    "OB": b"\x00" * 2,
    "OW": b"\x00" * 2,
    "OD": b"\x00" * 8,
    "OF": b"\x00" * 4,
    "OL": b"\x00" * 4,
    "OV": b"\x00" * 8,
    "UN": b"\x00" * 2,
}


def dummy_value(vr: str) -> object:
    """A non-identifying, non-empty value valid for ``vr`` (``D``; binary VRs get zero bytes); unknown VRs: empty.

    UIDs are not here: a ``D`` on a UI attribute gets the keyed UID (:meth:`Pseudonymizer.uid`)."""
    return DUMMY_BY_VR.get(vr, "")


_STRING_VRS = frozenset(
    {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT"}
)


def empty_value(vr: str) -> object:
    """The zero-length value for ``vr`` (``Z``)."""
    if vr == "SQ":
        return []
    if vr in ("OB", "OW", "OD", "OF", "OL", "OV", "UN"):
        return b""
    if vr in _STRING_VRS:
        return ""
    return None


# --- C: dates ---------------------------------------------------------------------------------------
def _shift_ymd(text: str, days: int) -> str | None:
    """Shift a (possibly partial: YYYY, YYYYMM, YYYYMMDD) date, keeping its precision."""
    n = len(text)
    if n not in (4, 6, 8) or not text.isdigit():
        return None
    year = int(text[:4])
    month = int(text[4:6]) if n >= 6 else 1
    day = int(text[6:8]) if n == 8 else 1
    try:
        shifted = _dt.date(year, month, day) + _dt.timedelta(days=days)
    except (ValueError, OverflowError):
        return None
    return f"{shifted.year:04d}{shifted.month:02d}{shifted.day:02d}"[:n]


def shift_da(value: str, days: int) -> str | None:
    """Shift every value of a DA (backslash-separated, ranges ``A-B`` too); ``None`` if any is invalid."""
    out = []
    for part in value.split("\\"):
        part = part.strip(" \x00")
        if not part:
            out.append("")
            continue
        pieces = []
        for piece in part.split("-"):
            if piece == "":
                pieces.append("")
                continue
            shifted = _shift_ymd(piece.strip(), days)
            if shifted is None:
                return None
            pieces.append(shifted)
        out.append("-".join(pieces))
    return "\\".join(out)


_DT = re.compile(r"^(\d{4}(?:\d{2}(?:\d{2})?)?)(.*)$")


def shift_dt(value: str, days: int) -> str | None:
    """Shift the date part of each DT value; time of day, fraction and UTC offset are kept."""
    out = []
    for part in value.split("\\"):
        part = part.strip(" \x00")
        if not part:
            out.append("")
            continue
        m = _DT.match(part)
        if m is None:
            return None
        date = _shift_ymd(m.group(1), days)
        rest = m.group(2)
        if date is None or (rest and not re.fullmatch(r"[\d.+\-]*", rest)):
            return None
        out.append(date + rest)
    return "\\".join(out)


# --- C: ages and text -------------------------------------------------------------------------------
#: Ages above this many years are reported as this value (HIPAA Safe Harbor aggregates ages over 89).
MAX_AGE_YEARS = 90


def cap_age(value: str) -> str | None:
    """An AS value with ages above 89 years reported as ``090Y``; ``None`` if not a valid AS."""
    value = value.strip(" \x00")
    if len(value) != 4 or not value[:3].isdigit() or value[3] not in "DWMY":
        return None
    n, unit = int(value[:3]), value[3]
    years = {"D": n / 365.25, "W": n / 52.18, "M": n / 12, "Y": n}[unit]
    return f"{MAX_AGE_YEARS:03d}Y" if years >= MAX_AGE_YEARS else value


def age_between(birth: str, on: str) -> str | None:
    """The AS value for a birth date and a later date (both DA ``YYYYMMDD``), capped like :func:`cap_age`."""
    try:
        b = _dt.date(int(birth[:4]), int(birth[4:6]), int(birth[6:8]))
        d = _dt.date(int(on[:4]), int(on[4:6]), int(on[6:8]))
    except (ValueError, IndexError):
        return None
    if d < b:
        return None
    years = d.year - b.year - ((d.month, d.day) < (b.month, b.day))
    if years >= 1:
        return cap_age(f"{min(years, 999):03d}Y")
    months = (d.year - b.year) * 12 + d.month - b.month - (d.day < b.day)
    if months >= 1:
        return f"{months:03d}M"
    return f"{min((d - b).days, 999):03d}D"


def identifier_pattern(values: list[str]) -> re.Pattern[str] | None:
    """A case-insensitive pattern matching any of ``values`` and their name/word components (>= 3 chars)."""
    tokens: set[str] = set()
    for v in values:
        v = v.strip(" \x00")
        if len(v) >= 3:
            tokens.add(v)
        for t in re.split(r"[\^\s=,\\]+", v):
            if len(t) >= 3:
                tokens.add(t)
    if not tokens:
        return None
    alternatives = sorted((re.escape(t) for t in tokens), key=len, reverse=True)
    return re.compile("|".join(alternatives), re.IGNORECASE)
