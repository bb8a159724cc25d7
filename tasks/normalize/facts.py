"""Scan-level facts for the manifest (the ones the seed paper asks for), read from de-identified headers."""

from __future__ import annotations

from typing import Any

from pydicom import Dataset

from tasks.store.attrs import json_safe


def _get(ds: Dataset, keyword: str) -> Any:
    value = json_safe(ds.get(keyword))
    if isinstance(value, list):
        return "\\".join(str(v) for v in value)
    return value


def _float(ds: Dataset, keyword: str) -> float | None:
    try:
        value = ds.get(keyword)
        return float(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def mr_weighting(echo_time: float | None, repetition_time: float | None, sequence: str = "") -> str | None:
    """T1 / T2 / PD weighting from TE and TR (ms), the usual spin-echo rule of thumb; None if unknown."""
    if echo_time is None or repetition_time is None:
        return None
    if "IR" in sequence.upper().split("\\") and repetition_time > 1500 and echo_time < 40:
        return "T1"  # inversion recovery with short TE (e.g. MPRAGE-like) reads as T1
    if repetition_time < 1000 and echo_time < 40:
        return "T1"
    if repetition_time >= 1500 and echo_time >= 60:
        return "T2"
    if repetition_time >= 1500 and echo_time < 40:
        return "PD"
    return "mixed"


_NAMED_WEIGHTING = (("FLAIR", "T2"), ("T2", "T2"), ("T1", "T1"), ("PD", "PD"), ("STIR", "T2"))


def weighting_from_name(*names: str) -> str | None:
    """Weighting a vendor's sequence name states (``T1TFE``, ``t2_tse``, ``PD_SPACE``, ``FLAIR``); None if none."""
    for name in names:
        upper = (name or "").upper()
        for token, weighting in _NAMED_WEIGHTING:
            if token in upper:
                return weighting
    return None


def _functional(ds: Dataset, sequence: str, keyword: str) -> float | None:
    """``keyword`` inside ``sequence`` of the shared, else the first per-frame, functional group (enhanced MR)."""
    for groups in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        items = ds.get(groups) or []
        if items and sequence in items[0] and items[0][sequence].value:
            value = _float(items[0][sequence].value[0], keyword)
            if value is not None:
                return value
    return None


def scan_facts(ds: Dataset) -> dict[str, Any]:
    """Manufacturer/model (when retained), frame rate, MR sequence and weighting, CT kernel and thickness."""
    modality = str(ds.get("Modality", "") or "")
    facts: dict[str, Any] = {
        "manufacturer": _get(ds, "Manufacturer"),
        "manufacturer_model": _get(ds, "ManufacturerModelName"),
        "acquisition_fps": _float(ds, "CineRate") or _float(ds, "RecommendedDisplayFrameRate"),
        "slice_thickness": _float(ds, "SliceThickness"),
        "ct_kernel": _get(ds, "ConvolutionKernel") if modality == "CT" else None,
        "mr_scanning_sequence": None,
        "mr_sequence_name": None,
        "mr_echo_time": None,
        "mr_repetition_time": None,
        "mr_weighting": None,
    }
    frame_time = _float(ds, "FrameTime")
    if facts["acquisition_fps"] is None and frame_time:
        facts["acquisition_fps"] = 1000.0 / frame_time
    if modality == "MR":
        sequence = _get(ds, "ScanningSequence") or _get(ds, "EchoPulseSequence") or ""
        name = _get(ds, "SequenceName") or _get(ds, "PulseSequenceName")
        echo = _float(ds, "EchoTime") or _functional(ds, "MREchoSequence", "EffectiveEchoTime")
        repetition = _float(ds, "RepetitionTime") or _functional(
            ds, "MRTimingAndRelatedParametersSequence", "RepetitionTime"
        )
        facts.update(
            mr_scanning_sequence=sequence or None,
            mr_sequence_name=name,
            mr_echo_time=echo,
            mr_repetition_time=repetition,
            mr_weighting=mr_weighting(echo, repetition, str(sequence))
            or weighting_from_name(str(name or ""), str(_get(ds, "SeriesDescription") or "")),
        )
    return facts
