"""De-identify one instance: header profile -> pixel cleaning -> marking (PS3.15 Annex E)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID

from tasks.config import CleanPixelsMode
from tasks.deid.actions import age_between
from tasks.deid.context import DeidContext
from tasks.deid.documents import blank_document
from tasks.deid.engine import Identity, deidentify
from tasks.deid.options import BASIC_PROFILE_CODE, CLEAN_PIXEL_CODE, MEDFLOW_OPTION_METHODS, OPTION_CODES, DeidOption
from tasks.deid.reader import transfer_syntax

if TYPE_CHECKING:
    from tasks.pixels.options import PixelCleaningResult

log = logging.getLogger(__name__)

IMPLEMENTATION_VERSION = "MEDFLOW_0_1"
METHOD = "MEDFLOW PS3.15 E.1 BASIC PROFILE"


@dataclass
class DeidentifiedInstance:
    """A de-identified dataset ready to write, with its pseudonymous identity and a PHI-free report."""

    dataset: Dataset
    cleaned: PixelCleaningResult | None
    patient_id: str
    study_id: str
    series_id: str
    instance_id: str
    relpath: str
    action_counts: dict[str, int]
    pixel_report: dict[str, Any] | None
    date_offset_days: int
    options_applied: list[str] = field(default_factory=list)

    @property
    def pixels(self) -> np.ndarray | None:
        """The cleaned pixels (made on first use: writing a file does not need them), or None when not cleaned."""
        return None if self.cleaned is None else self.cleaned.pixels


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    return "" if value is None else str(value).strip(" \x00")


def _derive_age(ds: Dataset) -> None:
    """Add PatientAge from the original birth and study dates before both are changed (ages stay consistent)."""
    if ds.get("PatientAge"):
        return
    birth = _text(ds, "PatientBirthDate")
    on = _text(ds, "StudyDate") or _text(ds, "AcquisitionDate") or _text(ds, "ContentDate")
    if len(birth) == 8 and len(on) == 8:
        age = age_between(birth, on)
        if age:
            ds.PatientAge = age


# Tags written by :func:`mark` (BaseTag keys, as pydicom stores them).
_CODE_VALUE, _SCHEME, _MEANING = BaseTag(0x00080100), BaseTag(0x00080102), BaseTag(0x00080104)
_REMOVED, _METHOD, _METHOD_CODES = BaseTag(0x00120062), BaseTag(0x00120063), BaseTag(0x00120064)
_DATES_FLAG = BaseTag(0x00280303)  # Longitudinal Temporal Information Modified


def _code_item(code: tuple[str, str]) -> Dataset:
    return Dataset(
        {
            _CODE_VALUE: DataElement(_CODE_VALUE, "SH", code[0]),
            _SCHEME: DataElement(_SCHEME, "SH", "DCM"),
            _MEANING: DataElement(_MEANING, "LO", code[1]),
        }
    )


def mark(ds: Dataset, options: frozenset[DeidOption], pixels_cleaned: bool) -> list[str]:
    """Write PatientIdentityRemoved, DeidentificationMethod(+CodeSequence) and the dates flag; return codes."""
    codes = [BASIC_PROFILE_CODE]
    if pixels_cleaned:
        codes.append(CLEAN_PIXEL_CODE)
    codes += [OPTION_CODES[o] for o in sorted(options) if o in OPTION_CODES]
    if DeidOption.RETAIN_LONGITUDINAL_MODIFIED_DATES in options:
        dates = "MODIFIED"
    elif DeidOption.RETAIN_LONGITUDINAL_FULL_DATES in options:
        dates = "UNMODIFIED"
    else:
        dates = "REMOVED"
    methods = [METHOD] + [meaning.upper()[:64] for _, meaning in codes[1:]]
    methods += [MEDFLOW_OPTION_METHODS[o] for o in sorted(options) if o in MEDFLOW_OPTION_METHODS]
    d = ds._dict  # direct element construction: this runs once per file
    d[_REMOVED] = DataElement(_REMOVED, "CS", "YES")
    d[_METHOD] = DataElement(_METHOD, "LO", methods)
    d[_METHOD_CODES] = DataElement(_METHOD_CODES, "SQ", Sequence([_code_item(c) for c in codes]))
    d[_DATES_FLAG] = DataElement(_DATES_FLAG, "CS", dates)
    return [c[0] for c in codes]


def deidentify_instance(ds: Dataset, ctx: DeidContext) -> DeidentifiedInstance:
    """Apply the profile, clean pixels where ``ctx.clean_pixels`` says so, and mark ``ds`` (in place)."""
    pseudo = ctx.pseudonymizer
    original_pid = _text(ds, "PatientID")
    study_uid, series_uid, sop_uid = (
        _text(ds, "StudyInstanceUID"),
        _text(ds, "SeriesInstanceUID"),
        _text(ds, "SOPInstanceUID"),
    )
    pseudo_pid = pseudo.pseudo_patient_id(original_pid, study_uid)
    offset = pseudo.date_offset_days(original_pid, study_uid)
    syntax = transfer_syntax(ds)
    if DeidOption.RETAIN_PATIENT_CHARACTERISTICS in ctx.options:
        _derive_age(ds)

    identity = Identity(
        pseudo_patient_id=pseudo_pid, date_offset_days=offset, patient_name=pseudo.dummy_name(pseudo_pid)
    )
    report = deidentify(
        ds,
        ctx.rules,
        pseudo,
        identity,
        retain_safe_private=DeidOption.RETAIN_SAFE_PRIVATE in ctx.options,
        retain_uids=DeidOption.RETAIN_UIDS in ctx.options,
        retain_unknown=DeidOption.RETAIN_UNKNOWN_ATTRIBUTES in ctx.options,
        identifying_text_tags=ctx.text_tags,
    )

    blank_document(ds)
    if "PatientID" not in ds:  # type 2 in the Patient module: present with the pseudonym the path uses
        ds.PatientID = pseudo_pid
    if "PatientName" not in ds:
        ds.PatientName = identity.patient_name

    meta = FileMetaDataset(
        {
            BaseTag(t): DataElement(t, vr, v)
            for t, vr, v in (
                (0x00020002, "UI", ds.SOPClassUID),  # Media Storage SOP Class UID
                (0x00020003, "UI", ds.SOPInstanceUID),  # Media Storage SOP Instance UID (already mapped)
                (0x00020010, "UI", syntax),  # Transfer Syntax UID
                (0x00020012, "UI", PYDICOM_IMPLEMENTATION_UID),  # Implementation Class UID
                (0x00020013, "SH", IMPLEMENTATION_VERSION),  # Implementation Version Name
            )
        }
    )
    ds.file_meta = meta
    ds.preamble = b"\x00" * 128

    result = None
    if ctx.clean_pixels is not CleanPixelsMode.OFF:
        from tasks.pixels import clean_or_check  # imported lazily: heavy (OCR) and optional

        result = clean_or_check(ds, ctx.clean_pixels, ctx.pixel_options)
    pixel_report = None if result is None else result.report
    codes = mark(ds, ctx.options, pixels_cleaned=pixel_report is not None)

    study = pseudo.uid(study_uid) if study_uid else "no-study"
    series = pseudo.uid(series_uid) if series_uid else "no-series"
    instance = pseudo.uid(sop_uid)
    log.debug("de-identified instance %s (%d actions)", instance, sum(report.counts.values()))
    return DeidentifiedInstance(
        dataset=ds,
        cleaned=result,
        patient_id=pseudo_pid,
        study_id=study,
        series_id=series,
        instance_id=instance,
        relpath=f"{pseudo_pid}/{study}/{series}/{instance}.dcm",
        action_counts=report.as_dict(),
        pixel_report=pixel_report,
        date_offset_days=offset,
        options_applied=codes,
    )
