"""Turn one original attribute value into the search patterns that would reveal it.

Rule (copied into every audit report as ``pattern_rule``):

* every pattern is case-folded, stripped, with inner whitespace collapsed to one space;
* person names (PN) give the whole value with ``^`` kept and with ``^`` as space, "given family",
  "family, given", and each name component of 4 characters or more; a family, given or middle name of 2 or 3
  letters (Li, Ng, Kim) is searched as a whole word (no letter or digit on either side) in text outputs only
  (text files, HTML text, JSON and Parquet values, DICOM element values), never in binary content;
* dates (DA, and the date part of DT) give YYYYMMDD plus ISO ``YYYY-MM-DD``, ``YYYY/MM/DD``, ``YYYY.MM.DD``,
  ``DD.MM.YYYY``, ``DD/MM/YYYY``, ``MM/DD/YYYY``, ``DD-MM-YYYY`` and ``MM-DD-YYYY``;
* UIDs are searched verbatim, except the DICOM well-known UIDs (transfer syntaxes, SOP classes, ...);
* times (TM) are not collected: day-granular date shifting keeps times by design and a time alone does not
  identify anyone;
* a pattern is dropped when it has fewer than 4 letters or digits, when it has no letters and fewer than
  6 digits, when it is a measurement-like number (signed, or with one decimal point: ``-11.2``,
  ``1.000000``), when all its digits are the same (``000000``), or when it is a generic word
  (``GENERIC_WORDS``: yes/no, anonymous, modality codes, body parts, image-type terms, common
  English words, job titles, equipment vendors, the labels of name fields that placeholder names are made
  of (``Last^First``, whose ``last`` would otherwise match Lightning's ``last.ckpt``), ...);
* a pattern is also dropped when it equals a whole value of an attribute the profile keeps (not PS3.15-listed,
  or retained by an option: ``Manufacturer``, ``Modality``, ...) in any original: the output carries such
  values by design (an InstitutionName that reads ``GE MEDICAL SYSTEMS`` like the kept Manufacturer);
* the project's own vocabulary (``tasks.audit.vocabulary``: medflow's reason codes, status words, keys, column
  names and messages, DICOM keywords, the metadata words of zarr and pyarrow) is never a finding: a folder or
  file name of the originals that consists of vocabulary words (``truncated.dcm``, ``nested.dcm``) is no pattern;
  a header value that does (a patient named "Nested") is searched in everything derived from headers (DICOM
  copies, Zarr attributes, the manifest's cells, any other file) but not where only code writes words: JSON
  keys, Parquet schemas, zarr's own metadata, the run logs (``inputs.jsonl``, ``quarantine.jsonl``,
  ``deid-inputs.jsonl``, ``ingest-runs/``, ``qc/results-*.json``) and the Prefect database (with Prefect's
  words);
* Great Expectations sees nothing but the manifest: in the files it writes (``qc/gx/``) a pattern counts only
  when the manifest holds it too, so its templates, comments and tracebacks are never findings and a value it
  renders is reported there and in the manifest.
"""

from __future__ import annotations

import re
from datetime import date

from pydicom.uid import UID_dictionary

MIN_LENGTH = 4
MIN_NUMERIC_DIGITS = 6

_GENERIC_TEXT = """
    YES NO NONE NULL UNKNOWN UNKNWN OTHER TRUE FALSE MALE FEMALE ANON ANONYMOUS ANONYMIZED ANONYMISED REMOVED
    DEIDENTIFIED REDACTED PATIENT DOCTOR PHYSICIAN HOSPITAL CLINIC STUDY SERIES IMAGE TEST DEMO SAMPLE
    ORIGINAL DERIVED PRIMARY SECONDARY AXIAL LOCALIZER LOCALISER REFORMATTED MPR
    HEAD NECK CHEST ABDOMEN PELVIS HEART BRAIN SPINE KNEE LIVER BREAST CARDIAC ECHO ULTRASOUND
    MONOCHROME1 MONOCHROME2 RGB YBR_FULL YBR_FULL_422 PALETTE
    ISO_IR ISO_IR_100 ISO_IR_192 ISO_2022
    ASSIGNED UNASSIGNED ACTIVE INACTIVE COMPLETED SCHEDULED
    HFS HFP FFS FFP LEFT RIGHT BOTH
    CR CT MR NM US OT BI CD DD DG ES LS PT RG ST TG XA RF RTIMAGE RTDOSE RTSTRUCT RTPLAN RTRECORD HC DX MG IO PX
    HERE THERE THIS THAT WITH FROM WHAT WHEN WHERE WHICH NAME NAMES UNIT FIELD PLAN NOTE NOTES DATA INFO
    MODALITY MODALITIES MANUFACTURER MODEL DEVICE STATION SCANNER PROTOCOL
    NORMAL ROUTINE DEFAULT SERVICE OPERATOR TECHNICIAN RADIOLOGIST STAFF ADMIN USER NURSE RESIDENT
    GE SIEMENS PHILIPS TOSHIBA CANON HITACHI FUJIFILM FUJI AGFA KODAK CARESTREAM HOLOGIC ESAOTE SAMSUNG MINDRAY
    GM SM XC PR AU ECG EPS HD SR IVUS OP SMR AR KER VA SRF KO SEG REG OPT BDUS BMD DOC FID PLAN IOL IVOCT
    LAST FIRST MIDDLE GIVEN FAMILY SURNAME FORENAME PREFIX SUFFIX
    """
GENERIC_WORDS = frozenset(w.casefold() for w in _GENERIC_TEXT.split())

_WS = re.compile(r"\s+")
_NUMERIC = re.compile(r"[0-9.+\-/: ]+")
_MEASUREMENT = re.compile(r"[+-]?\d*\.?\d*")
_DATE = re.compile(r"(\d{4})(\d{2})(\d{2})")


def normalise(text: str) -> str:
    """Case-fold, strip, collapse inner whitespace (and drop NULs used as padding)."""
    return _WS.sub(" ", text.replace("\x00", " ")).strip().casefold()


def is_identifying(pattern: str) -> bool:
    """False for values too short or too generic to identify anyone (see module docstring)."""
    if sum(c.isalnum() for c in pattern) < MIN_LENGTH or pattern in GENERIC_WORDS:
        return False
    if _NUMERIC.fullmatch(pattern):
        digits = [c for c in pattern if c.isdigit()]
        if len(digits) < MIN_NUMERIC_DIGITS or len(set(digits)) == 1:
            return False
        if _MEASUREMENT.fullmatch(pattern) and not pattern.isdigit():
            return False
    return True


def date_variants(value: str) -> set[str]:
    """YYYYMMDD and the common written forms of a valid calendar date; empty if ``value`` is not one."""
    m = _DATE.fullmatch(value.strip()[:8]) if len(value.strip()) >= 8 else None
    if m is None:
        return set()
    y, mo, d = m.groups()
    try:
        date(int(y), int(mo), int(d))
    except ValueError:
        return set()
    return {
        f"{y}{mo}{d}",
        f"{y}-{mo}-{d}",
        f"{y}/{mo}/{d}",
        f"{y}.{mo}.{d}",
        f"{d}.{mo}.{y}",
        f"{d}/{mo}/{y}",
        f"{mo}/{d}/{y}",
        f"{d}-{mo}-{y}",
        f"{mo}-{d}-{y}",
    }


def name_variants(value: str) -> set[str]:
    """Variants of a DICOM person name (all component groups)."""
    out: set[str] = set()
    for group in value.split("="):
        group = group.strip()
        if not group:
            continue
        out.add(normalise(group))
        parts = [normalise(p) for p in group.split("^")]
        words = [p for p in parts if p]
        if words:
            out.add(" ".join(words))
        if len(words) >= 2:
            out.add(" ".join([*words[1:], words[0]]))
            out.add(f"{words[0]}, {' '.join(words[1:])}")
        out.update(words)
    return out


SHORT_NAME_LENGTHS = (2, 3)
#: PN components searched as short names: family, given, middle (prefix and suffix are titles: Dr, Jr, III).
SHORT_NAME_COMPONENTS = 3


def short_name_parts(value: str) -> set[str]:
    """Family, given and middle names of 2-3 letters in a person name, case-folded (searched as whole words)."""
    found: set[str] = set()
    for group in value.split("="):
        for component in group.split("^")[:SHORT_NAME_COMPONENTS]:
            part = normalise(component)
            if len(part) in SHORT_NAME_LENGTHS and part.isalpha() and part not in GENERIC_WORDS:
                found.add(part)
    return found


def variants(value: str, vr: str) -> set[str]:
    """All identifying search patterns for one value (one item of a multi-valued attribute)."""
    if vr == "TM":
        return set()
    if vr == "UI":
        uid = value.strip().rstrip("\x00")
        return {uid} if uid and uid not in UID_dictionary and is_identifying(uid) else set()
    if vr == "PN":
        found = name_variants(value)
    elif vr == "DA":
        found = set()
        for part in value.split("-"):  # a DA query range
            found |= date_variants(part)
    elif vr == "DT":
        found = date_variants(value) | {normalise(value)}
    else:
        found = {normalise(value)} | date_variants(value)
    return {p for p in found if is_identifying(p)}
