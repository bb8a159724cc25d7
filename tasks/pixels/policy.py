"""Which instances need burned-in text removal (the ``auto`` rule).

``auto`` sorts every instance with pixels into one of three actions (:class:`PixelAction`):

- ``clean``: full cleaning (detection on composites, masking, verification) where text is likely: ultrasound,
  captures and photographs, projection radiography (CR, DX, MG, IO, PX) and angiography/fluoroscopy (XA, RF),
  any SC/ultrasound SOP class, and any image whose BurnedInAnnotation (0028,0301) is YES, or absent on one of
  these modalities;
- ``check``: everything else (CT, MR, PT, NM, ...), and a text-prone projection modality that declares NO: a cheap
  text-presence check (``tasks.pixels.check``) per series; slices are masked only where text is found;
- ``none``: no pixel data.
"""

from __future__ import annotations

from enum import StrEnum

from pydicom import Dataset

from tasks.config import CleanPixelsMode

CAPTURE_MODALITIES = frozenset({"US", "IVUS", "SC", "OT", "XC", "ES", "GM", "SM", "DOC", "OP", "OPT", "ECG"})
"""Ultrasound, captures, photographs: cleaned whatever BurnedInAnnotation says (their text is operator-typed)."""

PROJECTION_MODALITIES = frozenset({"CR", "DX", "MG", "IO", "PX", "XA", "RF", "DF", "DS", "CF"})
"""Projection radiography, mammography, angiography and fluoroscopy: burned-in demographics are common; cleaned
unless BurnedInAnnotation says NO (then checked)."""

TEXT_PRONE_MODALITIES = CAPTURE_MODALITIES | PROJECTION_MODALITIES
"""Modalities whose pixels commonly carry burned-in annotation."""

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


class PixelAction(StrEnum):
    """What happens to an instance's pixels."""

    CLEAN = "clean"
    CHECK = "check"
    NONE = "none"


def pixel_action(ds: Dataset, mode: CleanPixelsMode | str) -> PixelAction:
    """The action for ``ds`` under ``mode``: ``on`` cleans every image, ``off`` none, ``auto`` as above."""
    mode = CleanPixelsMode(mode)
    if mode is CleanPixelsMode.OFF or not _has_pixels(ds):
        return PixelAction.NONE
    if mode is CleanPixelsMode.ON:
        return PixelAction.CLEAN
    burned_in = str(ds.get("BurnedInAnnotation", "")).strip().upper()
    modality = str(ds.get("Modality", "")).strip().upper()
    sop_class = str(ds.get("SOPClassUID", "") or getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", ""))
    if burned_in == "YES" or modality in CAPTURE_MODALITIES:
        return PixelAction.CLEAN
    if sop_class.startswith(SECONDARY_CAPTURE_PREFIX) or sop_class in ULTRASOUND_SOP_CLASSES:
        return PixelAction.CLEAN
    if modality in PROJECTION_MODALITIES and burned_in != "NO":
        return PixelAction.CLEAN
    return PixelAction.CHECK


def needs_cleaning(ds: Dataset, mode: CleanPixelsMode | str) -> bool:
    """Whether ``ds`` gets full cleaning under ``mode`` (``check`` instances are cleaned only where text is found)."""
    return pixel_action(ds, mode) is PixelAction.CLEAN


def _has_pixels(ds: Dataset) -> bool:
    return any(tag in ds for tag in (0x7FE00010, 0x7FE00008, 0x7FE00009))
