"""What free text may keep under a ``C`` (clean) action: only what is known not to identify.

Annex E's ``C`` means "clean: replace with values of similar meaning known not to contain identifying information".
medflow never tries to recognise identifiers and remove them; it keeps only what it knows and drops the rest. The
rule per attribute:

- **Coded values** (:data:`CODED_VALUES`: Allergies (0010,2110), Pre-Medication (0040,0012)): a value is kept when
  it equals, ignoring case, the meaning of a code in the named context groups of PS3.16 (contrast agents and their
  ingredients, drugs, premedications, substances; pydicom's copy of the standard's codes) or a "no known
  allergies" notation; every other value is removed.
- **No vocabulary** (:data:`NO_VOCABULARY`: Patient State (0038,0500), Special Needs (0038,0050)): the standard
  names no value set, so nothing is known to be safe: removed.
- **Defined terms** (:data:`DEFINED_TERMS`: code strings whose PS3.3 definition lists the terms): kept when they
  are one of them.
- **Descriptors** (every other text attribute the profile cleans, e.g. Study/Series Description, Protocol Name,
  Image Comments under ``clean-descriptors``): word by word; a word is kept when it is a word of an imaging term of
  PS3.16 (anatomic regions, modalities, views, laterality, imaging procedures, contrast agents), a common
  acquisition abbreviation (:data:`ACQUISITION_WORDS`), a connective (:data:`CONNECTIVES`), or a number of at most
  three digits with an optional unit; a value left with only connectives and numbers is empty; every other word
  is removed, and so is any word equal to an identifier of the instance. Eponyms
  (a code meaning with ``'s``, and the surnames in :data:`EPONYMS`, read from these groups) are never taken.
- Binary (OB/UN) values cannot be read, so they are removed.

Where nothing known remains, the attribute gets the Basic Profile action of its row (removed, emptied or a dummy
as its IOD requires).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache

ALLERGIES, PRE_MEDICATION = 0x00102110, 0x00400012
PATIENT_STATE, SPECIAL_NEEDS = 0x00380500, 0x00380050
REASON_FOR_MODIFICATION = 0x04000565

#: Context groups (CID numbers of PS3.16) whose code meanings are the values a coded attribute may keep.
CODED_VALUES: dict[int, tuple[int, ...]] = {
    ALLERGIES: (10, 12, 13, 65, 66, 3850, 6089, 12030),
    PRE_MEDICATION: (10, 12, 65, 66, 76, 3850, 12030),
}
#: Notations of "no known allergy" (not identifying; common in exports).
NO_KNOWN_ALLERGY = frozenset({"none", "no known allergies", "no known allergy", "nka", "nkda"})
NO_VOCABULARY = frozenset({PATIENT_STATE, SPECIAL_NEEDS})
DEFINED_TERMS: dict[int, frozenset[str]] = {REASON_FOR_MODIFICATION: frozenset({"COERCE", "CORRECT"})}


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


#: Context groups whose code meanings (and modality code values) make the descriptor word list.
DESCRIPTOR_CIDS = (2, 4, 12, 13, 27, 29, 33, 100, 244, 245, 501, 502, 3428, 4010, 4011, 4014, 4015, 4031, 12226)
#: Connectives: kept between known words, never enough on their own.
CONNECTIVES = _words("a an and at by for from in of on or the to with without w wo w/ w/o no non plus")
#: Acquisition abbreviations seen in study, series and protocol descriptions.
ACQUISITION_WORDS = _words(
    """
    pre post ax axial sag sagittal cor coronal obl oblique tra trans transverse lat ap pa ll rl lr llat rlat
    lt rt left right bilat bilateral upper lower mid
    t1 t2 t1w t2w pd pdw flair stir dwi dti adc swi gre tse fse se ir epi bold mra mrv tof pc cine perf
    fs fatsat fat sat water inphase outphase dixon vibe space mprage spgr bravo haste trufisp fiesta ssfp
    3d 2d 4d mip mpr vr recon reformat thin thick slice slices soft tissue bone lung window std standard
    helical spiral axial scout localizer localiser topogram survey cal calibration test phantom
    contrast c+ c- iv oral delayed arterial venous portal phase early late dynamic bolus tracking
    angio cta ctp pet spect nm us echo tte tee doppler color colour mode m-mode pw cw b-mode strain
    a2c a3c a4c a5c plax psax sax lax sub subcostal suprasternal apical parasternal view views
    rest stress low dose ld hd hr routine protocol exam study series image images scan series
    screening diagnostic follow-up followup fu baseline initial repeat
    """
)
#: Surnames inside the descriptor groups' meanings (Boyd's and Dodd's perforators, circle of Willis, Hunter's canal).
EPONYMS = frozenset({"boyd", "dodd", "willis", "hunterian"})
_UNIT = r"(?:mm|cm|m|ms|s|sec|min|kv|kvp|ma|mas|mhz|hz|t|d|x|%|deg|ml)?"
_NUMBER = re.compile(rf"\d{{1,3}}(?:[.,]\d+)?{_UNIT}", re.IGNORECASE)
_DATE_LIKE = re.compile(r"\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}|\d{4,}")
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9+\-/]*[A-Za-z0-9+]|[A-Za-z0-9]")


def _codes(cids: Iterable[int]) -> list[tuple[str, str]]:
    from pydicom.sr.codedict import codes  # ~0.5 s to import: only when text is cleaned

    out = []
    for cid in cids:
        collection = getattr(codes, f"cid{cid}")
        for keyword in collection.dir():
            code = getattr(collection, keyword)
            out.append((str(code.value), str(code.meaning)))
    return out


@cache
def coded_terms(tag: int) -> frozenset[str]:
    """Values (case-folded) that coded attribute ``tag`` may keep."""
    meanings = {meaning.casefold().strip() for _, meaning in _codes(CODED_VALUES[tag])}
    return frozenset(meanings | (NO_KNOWN_ALLERGY if tag == ALLERGIES else set()))


@cache
def descriptor_words() -> frozenset[str]:
    """Words (case-folded) a descriptor may keep."""
    words = set(ACQUISITION_WORDS | CONNECTIVES)
    for value, meaning in _codes(DESCRIPTOR_CIDS):
        if value.isalpha() and value.isupper() and len(value) <= 4:
            words.add(value.casefold())  # modality codes: CT, MR, US, ...
        if "'s" in meaning or "’s" in meaning:
            continue  # eponyms name people
        words.update(w.casefold() for w in re.findall(r"[A-Za-z]{2,}", meaning))
    return frozenset(words - EPONYMS)


def clean_descriptor(text: str, identifiers: re.Pattern[str] | None) -> str:
    """``text`` with only known words kept (numbers up to three digits, no dates); ``""`` if none is left."""
    text = _DATE_LIKE.sub(" ", text)
    known = descriptor_words()
    kept = []
    for word in _WORD.findall(text):
        folded = word.casefold()
        if identifiers is not None and identifiers.fullmatch(word):
            continue
        if folded in known or _NUMBER.fullmatch(word) or all(p in known for p in folded.split("/") if p):
            kept.append(word)
    has_word = any(not _NUMBER.fullmatch(w) and w.casefold() not in CONNECTIVES for w in kept)
    return " ".join(kept) if has_word else ""


def clean_value(tag: int, text: str, identifiers: re.Pattern[str] | None) -> str:
    """What one value of text attribute ``tag`` keeps under ``C``; ``""`` when nothing is known to be safe."""
    value = text.strip(" \x00")
    if not value or tag in NO_VOCABULARY:
        return ""
    if tag in CODED_VALUES:
        return value if value.casefold() in coded_terms(tag) else ""
    if tag in DEFINED_TERMS:
        return value if value.upper() in DEFINED_TERMS[tag] else ""
    return clean_descriptor(value, identifiers)
