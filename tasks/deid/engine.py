"""Apply the compiled Annex E rules to a dataset: one pass over the elements, one dict lookup each.

The walk recurses through sequences to any depth; every UID is mapped with the same keyed function
(so references, frame-of-reference and file-meta UIDs stay consistent); dates move by the patient's
offset. :class:`DeidReport` counts what was done per action, never values.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from pydicom.datadict import DicomDictionary, mask_match
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.uid import UID_dictionary

from tasks.deid.actions import (
    cap_age,
    dummy_value,
    empty_value,
    identifier_pattern,
    shift_da,
    shift_dt,
)
from tasks.deid.iod import COMPOUND_CODES, TypeMap, choose, load_iod_types
from tasks.deid.private import is_safe
from tasks.deid.profile import TEXT_OP, Rule
from tasks.deid.pseudonyms import Pseudonymizer
from tasks.deid.vocabulary import clean_value
from tasks.errors import DeidError

#: Deepest sequence nesting accepted (real objects stay far below; deeper input is refused, not truncated).
MAX_DEPTH = 64
_IDENTIFYING_OPS = frozenset({"X", "Z", "D", "PID", "PNAME", "ACC", *COMPOUND_CODES})
_TEXT_VRS = frozenset({"PN", "LO", "SH", "LT", "ST", "UT", "UC", "DA", "CS"})


def identifying_text_tags(rules: dict[int, Rule]) -> tuple[int, ...]:
    """Tags whose text is identifying (removed or replaced): the words descriptor cleaning scrubs out.

    Empty when no rule cleans text, so the collection costs nothing under the default options.
    """
    if not any(op.startswith(TEXT_OP) for op, _ in rules.values()):
        return ()
    return tuple(sorted(t for t, (op, vr) in rules.items() if op in _IDENTIFYING_OPS and vr in _TEXT_VRS))


@dataclass
class DeidReport:
    """Counts per action code (``X``, ``Z``, ``D``, ``U``, ``K``, ``C``) and structural removals. No values."""

    counts: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict[str, int]:
        return dict(sorted(self.counts.items()))


@dataclass(frozen=True)
class Identity:
    """What the walk needs to know about the patient of this instance (pseudonymous values only)."""

    pseudo_patient_id: str
    date_offset_days: int
    patient_name: str


def _str(value: object) -> str:
    return "" if value is None else str(value)


class Walker:
    """One de-identification pass over one dataset (and its nested items)."""

    def __init__(
        self,
        rules: dict[int, Rule],
        pseudonyms: Pseudonymizer,
        identity: Identity,
        *,
        retain_safe_private: bool,
        retain_uids: bool,
        iod_types: TypeMap,
        retain_unknown: bool = False,
    ):
        self.rules = rules
        self.iod_types = iod_types
        self.retain_unknown = retain_unknown
        self.pseudo = pseudonyms
        self.identity = identity
        self.retain_safe_private = retain_safe_private
        self.retain_uids = retain_uids
        self.counts: Counter = Counter()
        self._pattern: re.Pattern[str] | None = None
        self._identifiers: list[str] = []
        self._snapshot: Dataset | None = None
        self._text_tags: tuple[int, ...] = ()

    # -- helpers -------------------------------------------------------------------------------
    def snapshot(self, ds: Dataset, tags: tuple[int, ...]) -> None:
        """Keep the top level's elements as they are now (cheap: a dict copy; elements are replaced, not edited,
        for every identifying text attribute), so descriptor cleaning can learn the identifiers on demand."""
        self._snapshot = Dataset(dict(ds._dict))
        self._text_tags = tags

    def pattern(self) -> re.Pattern[str] | None:
        """The identifier pattern of this instance, built on the first descriptor that needs cleaning."""
        if self._snapshot is not None:
            self.collect_identifiers(self._snapshot, self._text_tags)
            self._snapshot = None
        return self._pattern

    def collect_identifiers(self, ds: Dataset, tags: tuple[int, ...]) -> None:
        """Remember identifying text of the top level (before it is removed) for descriptor cleaning."""
        d = ds._dict
        for tag in tags:
            if tag not in d:
                continue
            value = ds[tag].value
            if isinstance(value, MultiValue):
                self._identifiers.extend(_str(v) for v in value)
            elif value:
                self._identifiers.append(_str(value))
        self._pattern = identifier_pattern(self._identifiers)

    def map_uid(self, value: object, keep_registered: bool) -> object:
        if isinstance(value, (MultiValue, list)):
            return [self.map_uid(v, keep_registered) for v in value]
        text = _str(value)
        if not text or (keep_registered and text in UID_dictionary):
            return text
        return self.pseudo.uid(text)

    # -- the walk ------------------------------------------------------------------------------
    def walk(self, ds: Dataset, depth: int = 0, parent: int = 0) -> None:
        """De-identify the elements of ``ds``; ``parent`` is the tag of the sequence holding it (0 at the top)."""
        if depth > MAX_DEPTH:
            raise DeidError(f"sequences nested deeper than {MAX_DEPTH} levels", step="deid")
        rules_get = self.rules.get
        counts = self.counts
        d = ds._dict
        private_tags: list[int] = []
        for tag in list(d):
            rule = rules_get(int(tag))  # an int key compares in C; a BaseTag key would call BaseTag.__eq__
            if rule is None:
                group = tag >> 16
                if group & 1:
                    private_tags.append(tag)
                elif 0x5000 <= group <= 0x50FF or 0x6000 <= group <= 0x60FF:
                    del d[tag]
                    counts["X"] += 1
                elif group == 0x0012 and 0x0062 <= (tag & 0xFFFF) <= 0x0064:
                    del d[tag]  # marking attributes are re-written by tasks.deid.instance
                elif not self.retain_unknown and int(tag) not in DicomDictionary and mask_match(tag) is None:
                    del d[tag]  # the dictionary does not know it: nothing says it is safe
                    counts["X"] += 1
                else:
                    raw_vr = d[tag].VR
                    if raw_vr == "SQ":
                        self._recurse(ds, tag, depth)
                    elif raw_vr == "UI" and not self.retain_uids:
                        elem = ds[tag]
                        elem.value = self.map_uid(elem.value, True)
                        counts["U"] += 1
                continue
            op, vr = rule
            if op in COMPOUND_CODES:  # the file's own IOD decides: X, Z or D
                op = choose(op, self.iod_types.get((parent, int(tag))))
                if op == "D" and d[tag].VR == "SQ":
                    op = "RECURSE"
            if op == "X":
                del d[tag]
                counts["X"] += 1
            elif op == "RECURSE":
                self._recurse(ds, tag, depth)
                counts["K"] += 1
            elif op == "U" or op == "MAPUID":
                elem = ds[tag]
                if elem.VR == "UI":
                    elem.value = self.map_uid(elem.value, True)
                    counts["U"] += 1
                elif elem.VR == "SQ":
                    self._recurse(ds, tag, depth)
                elif isinstance(elem.value, bytes):  # a UID stored as UN/OB: decode, map, store as UI
                    text = elem.value.decode("ascii", "replace").strip(" \x00")
                    self._set(ds, tag, "UI", self.map_uid(text.split("\\"), True) if text else "")
                    counts["U"] += 1
                elif elem.value:  # unexpected VR: nothing trustworthy to keep
                    del d[tag]
                    counts["X"] += 1
            elif op == "K":
                counts["K"] += 1
            elif op == "Z":
                self._set(ds, tag, vr, empty_value(self._vr(d, tag, vr)))
                counts["Z"] += 1
            elif op == "D":
                actual = self._vr(d, tag, vr)
                if actual == "UI":  # a keyed UID is the non-identifying dummy that keeps references consistent
                    text = d[tag].value
                    self._set(ds, tag, "UI", self.map_uid(text.decode("ascii", "replace").strip(" \x00")
                                                          if isinstance(text, bytes) else text, False))  # fmt: skip
                else:
                    self._set(ds, tag, actual, dummy_value(actual))
                counts["D"] += 1
            elif op == "SHIFT":
                self._shift(ds, tag, vr)
            elif op == "PID":
                value = _str(ds[tag].value).strip()
                self._set(ds, tag, "LO", self.identity.pseudo_patient_id if depth == 0 else self._pid(value))
                counts["D"] += 1
            elif op == "PNAME":
                self._set(ds, tag, "PN", self.identity.patient_name)
                counts["D"] += 1
            elif op == "ACC":
                value = _str(ds[tag].value).strip()
                self._set(ds, tag, "SH", self.pseudo.accession(value) if value else None)
                counts["D"] += 1
            elif op == "AGE":
                elem = ds[tag]
                original = _str(elem.value).strip(" \x00")
                capped = cap_age(original) if original else None
                elem.value = capped
                counts["C" if capped != original else "K"] += 1
            elif op == "AEID":
                elem = ds[tag]
                if elem.value:
                    values = elem.value if isinstance(elem.value, MultiValue) else [elem.value]
                    elem.value = [self.pseudo.other_id(_str(v)) for v in values]
                counts["C"] += 1
            elif op.startswith(TEXT_OP):  # "TEXT:<basic code>": keep what is known not to identify
                elem = ds[tag]
                value = elem.value
                values = list(value) if isinstance(value, MultiValue) else [value]
                kept = [] if isinstance(value, bytes) else [clean_value(tag, _str(v), self.pattern()) for v in values]
                kept = [v for v in kept if v]
                if kept:
                    elem.value = kept if len(kept) > 1 else kept[0]
                    counts["C"] += 1
                    continue
                basic = op[len(TEXT_OP) + 1 :]
                if basic in COMPOUND_CODES:
                    basic = choose(basic, self.iod_types.get((parent, int(tag))))
                if basic == "Z" or basic == "D":
                    actual = self._vr(d, tag, vr)
                    self._set(ds, tag, actual, empty_value(actual) if basic == "Z" else dummy_value(actual))
                else:  # X, and anything a text row could not keep
                    del d[tag]
                    basic = "X"
                counts[basic] += 1
            else:  # pragma: no cover - compile_rules only emits the ops above
                raise DeidError(f"no operation {op!r} for ({tag >> 16:04X},{tag & 0xFFFF:04X})")
        if private_tags:
            self._private(ds, private_tags)

    def _pid(self, value: str) -> str | None:
        return self.pseudo.patient_id(value) if value else None

    @staticmethod
    def _vr(d: dict, tag: int, rule_vr: str) -> str:
        raw_vr = d[tag].VR
        return raw_vr if raw_vr and raw_vr != "UN" else rule_vr

    @staticmethod
    def _set(ds: Dataset, tag: int, vr: str, value: object) -> None:
        ds._dict[tag] = DataElement(tag, vr, value)

    def _recurse(self, ds: Dataset, tag: int, depth: int) -> None:
        elem = ds[tag]
        if elem.VR != "SQ" or not elem.value:
            return
        for item in elem.value:
            self.walk(item, depth + 1, int(tag))

    def _shift(self, ds: Dataset, tag: int, vr: str) -> None:
        elem = ds[tag]
        text = _str(elem.value) if not isinstance(elem.value, MultiValue) else "\\".join(_str(v) for v in elem.value)
        if not text.strip(" \x00"):
            self.counts["C"] += 1
            return
        days = self.identity.date_offset_days
        shifted = shift_dt(text, days) if elem.VR == "DT" else shift_da(text, days)
        if shifted is None:  # not a valid date: nothing trustworthy to keep
            self._set(ds, tag, elem.VR, None)
            self.counts["Z"] += 1
        else:
            self._set(ds, tag, elem.VR, shifted.split("\\") if "\\" in shifted else shifted)
            self.counts["C"] += 1

    def _private(self, ds: Dataset, tags: list[int]) -> None:
        d = ds._dict
        keep_blocks: set[int] = set()
        if self.retain_safe_private:
            for tag in tags:
                element = tag & 0xFFFF
                if element < 0x1000:
                    continue
                creator_tag = (tag & 0xFFFF0000) | (element >> 8)
                creator = d.get(creator_tag)
                if creator is not None and is_safe(_str(ds[creator_tag].value), tag >> 16, element):
                    keep_blocks.add(creator_tag)
                    self.counts["private-kept"] += 1
                    continue
                del d[tag]
                self.counts["X"] += 1
            for tag in tags:
                element = tag & 0xFFFF
                if 0x0010 <= element <= 0x00FF and tag not in keep_blocks:
                    d.pop(tag, None)
                elif element < 0x0010:
                    d.pop(tag, None)  # group length / reserved
        else:
            for tag in tags:
                del d[tag]
            self.counts["X"] += len(tags)
        ds._private_blocks = {}


def deidentify(
    ds: Dataset,
    rules: dict[int, Rule],
    pseudonyms: Pseudonymizer,
    identity: Identity,
    *,
    retain_safe_private: bool = False,
    retain_uids: bool = False,
    retain_unknown: bool = False,
    identifying_text_tags: tuple[int, ...] = (),
) -> DeidReport:
    """De-identify ``ds`` in place with the compiled ``rules``; return the counts per action.

    ``X/Z``, ``X/D``, ``Z/D`` and ``X/Z/D`` follow the Types of the IOD of the dataset's SOP Class UID. Public
    attributes the data dictionary does not know (any group) are removed unless ``retain_unknown``.
    """
    iod_types = load_iod_types().for_sop_class(_str(ds.get("SOPClassUID", "")))
    walker = Walker(
        rules,
        pseudonyms,
        identity,
        retain_safe_private=retain_safe_private,
        retain_uids=retain_uids,
        iod_types=iod_types,
        retain_unknown=retain_unknown,
    )
    if identifying_text_tags:
        walker.snapshot(ds, identifying_text_tags)
    walker.walk(ds)
    return DeidReport(counts=walker.counts)
