"""Which instances need burned-in text removal (the ``auto`` rule)."""

from __future__ import annotations

from pydicom import Dataset

from tasks.config import CleanPixelsMode

TEXT_PRONE_MODALITIES = frozenset({"US", "IVUS", "SC", "OT", "XC", "ES", "GM", "SM", "DOC", "OP", "OPT", "ECG"})
"""Modalities whose pixels commonly carry burned-in annotation (ultrasound, captures, photographs)."""

SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"
"""SC Image Storage and the multi-frame SC classes (…1.7, …1.7.1 to …1.7.4)."""

ULTRASOUND_SOP_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.6.1",  # US Image Storage
        "1.2.840.10008.5.1.4.1.1.3.1",  # US Multi-frame Image Storage
        "1.2.840.10008.5.1.4.1.1.6",  # US Image Storage (retired)
        "1.2.840.10008.5.1.4.1.1.3",  # US Multi-frame Image Storage (retired)
    }
)


def needs_cleaning(ds: Dataset, mode: CleanPixelsMode | str) -> bool:
    """Whether ``ds`` must have its pixels cleaned under ``mode`` (``on`` / ``off`` / ``auto``).

    ``auto``: modalities and SOP classes prone to burned-in text, or BurnedInAnnotation (0028,0301) = YES.
    Instances without Pixel Data never need cleaning.
    """
    mode = CleanPixelsMode(mode)
    if mode is CleanPixelsMode.OFF or not _has_pixels(ds):
        return False
    if mode is CleanPixelsMode.ON:
        return True
    if str(ds.get("BurnedInAnnotation", "")).strip().upper() == "YES":
        return True
    if str(ds.get("Modality", "")).strip().upper() in TEXT_PRONE_MODALITIES:
        return True
    sop_class = str(ds.get("SOPClassUID", "") or getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", ""))
    return sop_class.startswith(SECONDARY_CAPTURE_PREFIX) or sop_class in ULTRASOUND_SOP_CLASSES


def _has_pixels(ds: Dataset) -> bool:
    return any(tag in ds for tag in (0x7FE00010, 0x7FE00008, 0x7FE00009))
