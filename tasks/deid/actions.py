"""Pure functions behind the Annex E action codes (no I/O, no dataset walking).

Action codes of PS3.15 Table E.1-1:

- ``X`` remove; ``Z`` replace with a zero-length value; ``D`` replace with a non-identifying dummy
  of the same VR; ``U`` replace a UID with a keyed one; ``K`` keep; ``C`` clean (dates shifted,
  text scrubbed of identifiers, ages capped, AE titles pseudonymised).
- Combinations where the standard lets the choice depend on the IOD (``X/Z``, ``X/D``, ``Z/D``,
  ``X/Z/D``, ``X/Z/U*``) are resolved by :func:`resolve_combination` with one documented rule:

  *An attribute that is Type 1 in a common IOD (CT, MR, US, SC, SR, RT, enhanced multi-frame) gets a
  dummy (``D``); one that is Type 2 there stays present and empty (``Z``); every other attribute is
  removed (``X``). ``X/Z/U*`` sequences are kept and their UIDs replaced (the items are de-identified
  recursively, so references stay valid).* The two sets below are the Type 1 / Type 2 lists used.
"""

from __future__ import annotations

import datetime as _dt
import re

# Attributes of the Annex E combination rows that are Type 1 / Type 2 in a common IOD (DICOM 2024b PS3.3):
TYPE1_IN_COMMON_IODS: frozenset[int] = frozenset(
    {
        0x0008002A,  # Acquisition DateTime: Type 1 in enhanced CT/MR/US multi-frame image modules
        0x00181000,  # Device Serial Number: Type 1 in Enhanced General Equipment
        0x0040A032,  # Observation DateTime: Type 1C in SR content items
        0x00080023,  # Content Date: Type 1 in SR Document General, 2C/1 in image IODs
        0x00080033,  # Content Time: as Content Date
        0x00100020,  # Patient ID: replaced by the keyed pseudonym (a dummy)
    }
)
TYPE2_IN_COMMON_IODS: frozenset[int] = frozenset(
    {
        0x00400555,  # Acquisition Context Sequence: Type 2 in Acquisition Context module
        0x00102203,  # Patient's Sex Neutered: Type 2C in Patient module
        0x300E0008,  # Reviewer Name: Type 2C in RT Approval / Approval module
        0x300A00B2,  # Treatment Machine Name: Type 2 in RT Beams
        0x30080054,  # First Treatment Date: Type 2 in RT Treatment Summary Record
        0x30080056,  # Most Recent Treatment Date: Type 2 in RT Treatment Summary Record
        0x300A0006,  # RT Plan Date: Type 2 in RT General Plan
        0x300A0007,  # RT Plan Time: Type 2 in RT General Plan
        0x30080250,  # Treatment Date: Type 2 in RT Treatment Records
        0x30080251,  # Treatment Time: Type 2 in RT Treatment Records
        0x00700084,  # Content Creator's Name: Type 2 in Presentation State Identification
        0x00180010,  # Contrast/Bolus Agent: Type 2 in Contrast/Bolus module
        0x00189919,  # Instruction Performed DateTime: Type 2 where present
    }
)

SINGLE_CODES = frozenset({"X", "Z", "D", "U", "K", "C"})
COMBINATIONS = frozenset({"X/Z", "X/D", "Z/D", "X/Z/D", "X/Z/U*"})


def resolve_combination(code: str, tag: int) -> str:
    """The single action applied for a (possibly combined) Annex E code on attribute ``tag``."""
    if code in SINGLE_CODES:
        return code
    if code == "X/Z/U*":
        return "U*"
    choices = code.split("/")
    if code not in COMBINATIONS:
        raise ValueError(f"unknown Annex E action code {code!r} for ({tag >> 16:04X},{tag & 0xFFFF:04X})")
    if "D" in choices and (tag in TYPE1_IN_COMMON_IODS or (tag in TYPE2_IN_COMMON_IODS and "Z" not in choices)):
        return "D"
    if "Z" in choices and (tag in TYPE1_IN_COMMON_IODS or tag in TYPE2_IN_COMMON_IODS):
        return "Z"
    return "X" if "X" in choices else "Z"


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
    "UR": "",
    "US": 0,
    "SS": 0,
    "UL": 0,
    "SL": 0,
    "UV": 0,
    "SV": 0,
    "FL": 0.0,
    "FD": 0.0,
    "AT": 0,
    "OB": b"",
    "OW": b"",
    "OD": b"",
    "OF": b"",
    "OL": b"",
    "OV": b"",
    "UN": b"",
}


def dummy_value(vr: str) -> object:
    """A non-identifying value valid for ``vr`` (``D``); unknown VRs get an empty value."""
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


def scrub_text(value: str, pattern: re.Pattern[str] | None) -> str:
    """Clean a descriptor: every occurrence of a known identifier of the instance becomes ``***``."""
    if pattern is None or not value:
        return value
    return pattern.sub("***", value)


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
