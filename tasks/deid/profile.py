"""The Annex E rule table as data: ``annex_e.json`` -> :class:`Action` rules -> a tag -> operation dict.

:func:`compile_rules` turns the table plus the chosen options into one flat ``dict[int, (op, vr)]``
that the engine looks up once per element. Operations (``op``):

``X`` remove · ``Z`` empty · ``D`` dummy · ``U`` keyed UID · ``K`` keep · ``RECURSE`` keep a sequence
and de-identify its items · ``SHIFT`` move a DA/DT by the patient's offset · ``AGE`` keep an age,
capped at 90Y · ``AEID`` keyed pseudonym of an AE title · ``TEXT:<basic code>`` keep only the text known not
to identify (:mod:`tasks.deid.vocabulary`), else apply the row's basic code ·
``PID``/``PNAME``/``ACC`` patient id, patient name and accession pseudonyms · ``MAPUID`` keyed UID
unless the value is a registered (well-known) UID · ``X/Z``, ``X/D``, ``Z/D``, ``X/Z/D`` chosen per instance
from the Type of the attribute in the file's own IOD (:mod:`tasks.deid.iod`).

Attributes the table does not list: private ones (odd group) are removed (see :mod:`tasks.deid.private`),
curves (50xx) and overlays (60xx) are removed whole, sequences are recursed, UIDs are mapped
(``MAPUID``), the 13 unlisted DA/DT attributes are treated like listed dates (shifted, kept or
removed per the date options) and the 3 unlisted person names are emptied (medflow extensions); public
attributes the data dictionary does not know, in any group, are removed (``retain-unknown-attributes`` keeps them);
everything else is kept, as the Basic Profile allows.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from types import MappingProxyType

from pydicom.datadict import DicomDictionary

from tasks.deid.actions import COMBINATIONS, SINGLE_CODES
from tasks.deid.iod import COMPOUND_CODES
from tasks.deid.options import DeidOption

TABLE_FILE = Path(__file__).with_name("annex_e.json")

PATIENT_ID = 0x00100020
PATIENT_NAME = 0x00100010
ACCESSION_NUMBER = 0x00080050
PATIENT_AGE = 0x00101010
#: Free-text content items that only occur inside ``D`` sequences (Content / Graphic Annotation Sequence):
#: the table does not list them, medflow replaces them with a dummy so "D" on the sequence holds.
FREE_TEXT_IN_D_SEQUENCES = {0x0040A160: "UT", 0x00700006: "ST"}
#: Free text the table does not list that describes content Annex E replaces (the title of an encapsulated document,
#: whose document gets ``D``): emptied (both are Type 2), cleaned like a descriptor under ``clean-descriptors``.
MEDFLOW_DESCRIPTORS = {0x00420010: "ST"}
#: UI attributes that name a registered class, syntax or coding scheme: never identifying, never mapped.
REGISTRY_UID_SUFFIXES = ("ClassUID", "TransferSyntaxUID", "CodingSchemeUID", "MappingResourceUID", "ContextUID")

Rule = tuple[str, str]  # (op, vr)
TEXT_OP = "TEXT"


@dataclass(frozen=True, slots=True)
class Action:
    """One row of Table E.1-1: attribute (tag or pattern), Basic Profile code and per-option overrides."""

    tag: str
    name: str
    keyword: str
    vr: str
    basic: str
    options: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))

    @property
    def is_pattern(self) -> bool:
        return self.tag == "private" or "x" in self.tag

    def code_for(self, options: Iterable[DeidOption]) -> str:
        """The action code after options: modified-dates ``C`` first, then any ``K``, then any ``C``."""
        applied = [self.options[o.value] for o in options if o.value in self.options]
        if self.options.get(DeidOption.RETAIN_LONGITUDINAL_MODIFIED_DATES.value) == "C" and (
            DeidOption.RETAIN_LONGITUDINAL_MODIFIED_DATES in options
        ):
            return "C"
        if "K" in applied:
            return "K"
        if "C" in applied:
            return "C"
        return self.basic


@dataclass(frozen=True)
class Profile:
    """All rows of the table."""

    actions: tuple[Action, ...]
    standard: str

    def by_tag(self) -> dict[str, Action]:
        return {a.tag: a for a in self.actions}


@cache
def load_profile(path: Path = TABLE_FILE) -> Profile:
    """Parse ``annex_e.json`` (cached per process)."""
    doc = json.loads(Path(path).read_text())
    actions = tuple(
        Action(
            tag=r["tag"],
            name=r["name"],
            keyword=r["keyword"],
            vr=r["vr"],
            basic=r["basic"],
            options=MappingProxyType(dict(r["options"])),
        )
        for r in doc["rows"]
    )
    return Profile(actions=actions, standard=doc["standard"])


def specialise(op: str, vr: str, tag: int) -> str:
    """An action code as the concrete engine operation for this VR and tag (IOD choices stay for the walk)."""
    if op not in SINGLE_CODES and op not in COMBINATIONS:
        raise ValueError(f"unknown Annex E action code {op!r} for ({tag >> 16:04X},{tag & 0xFFFF:04X})")
    if op in COMPOUND_CODES:
        return op
    if op == "X/Z/U*":  # sequences kept, their items de-identified (UIDs replaced), so references stay valid
        return "RECURSE"
    if vr == "SQ":
        return {"D": "RECURSE", "K": "RECURSE", "C": "RECURSE", "U": "RECURSE"}.get(op, op)
    if op == "C":
        if vr in ("DA", "DT"):
            return "SHIFT"
        return {"TM": "K", "AS": "AGE", "AE": "AEID"}.get(vr, TEXT_OP)
    if op == "K" and vr == "AS":
        return "AGE"
    return op


def _dictionary_defaults(options: frozenset[DeidOption]) -> dict[int, Rule]:
    """Rules for standard attributes the table does not list: recurse sequences, map instance UIDs, and treat
    the few unlisted dates (DICONDE/DICOS inventory and calibration dates) like listed ones."""
    if DeidOption.RETAIN_LONGITUDINAL_FULL_DATES in options:
        date_op = "K"
    elif DeidOption.RETAIN_LONGITUDINAL_MODIFIED_DATES in options:
        date_op = "SHIFT"
    else:
        date_op = "X"
    rules: dict[int, Rule] = {}
    for tag, entry in DicomDictionary.items():
        vr, keyword = entry[0], entry[4]
        if vr in ("DA", "DT"):
            rules[tag] = (date_op, vr)
        elif vr == "PN":  # the 3 unlisted person names (DICONDE reviewers, trial document author)
            rules[tag] = ("Z", vr)
        elif vr == "SQ":
            rules[tag] = ("RECURSE", "SQ")
        elif vr == "UI" and tag >> 16 != 0x0002:
            # class / syntax / coding-scheme UIDs name what an object is (vendor classes included): kept
            rules[tag] = ("K" if keyword.endswith(REGISTRY_UID_SUFFIXES) else "MAPUID", "UI")
    return rules


def compile_rules(options: Iterable[DeidOption], profile: Profile | None = None) -> dict[int, Rule]:
    """The flat ``tag -> (op, vr)`` dict the engine uses, for one set of options."""
    profile = profile or load_profile()
    options = frozenset(options)
    rules = _dictionary_defaults(options)
    for tag, vr in FREE_TEXT_IN_D_SEQUENCES.items():
        rules[tag] = ("D", vr)
    for tag, vr in MEDFLOW_DESCRIPTORS.items():
        rules[tag] = (f"{TEXT_OP}:Z" if DeidOption.CLEAN_DESCRIPTORS in options else "Z", vr)
    for action in profile.actions:
        if action.is_pattern:
            continue  # handled structurally by the engine (groups 50xx/60xx, odd groups)
        tag = int(action.tag, 16)
        code = action.code_for(options)
        if code == "C" and action.options.get(DeidOption.RETAIN_LONGITUDINAL_MODIFIED_DATES.value) == "C":
            # modified dates: DA/DT move; times and the UTC offset carry no date; binary timestamps get the
            # basic action (they cannot be shifted reliably)
            if action.vr in ("TM", "SH"):
                code = "K"
            elif action.vr not in ("DA", "DT"):
                code = action.basic
        op = specialise(code, action.vr, tag)
        if op == TEXT_OP:
            op = f"{TEXT_OP}:{action.basic}"  # what the text gets when nothing known not to identify is left
        rules[tag] = (op, action.vr)
    if DeidOption.RETAIN_UIDS in options:  # listed UIDs follow their row (two stay U); unlisted ones are kept
        rules = {t: (("K", vr) if op == "MAPUID" else (op, vr)) for t, (op, vr) in rules.items()}
    rules[PATIENT_ID] = ("PID", "LO")
    rules[PATIENT_NAME] = ("PNAME", "PN")
    rules[ACCESSION_NUMBER] = ("ACC", "SH")
    return rules


def pattern_action(profile: Profile, pattern: str, options: Iterable[DeidOption]) -> str:
    """Code of a repeating-group or private pattern row (``50xxxxxx``, ``60xx3000``, ``private``)."""
    return profile.by_tag()[pattern].code_for(frozenset(options))
