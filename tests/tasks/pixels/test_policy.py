from pydicom import Dataset

from tasks.config import CleanPixelsMode
from tasks.pixels import needs_cleaning


def _ds(**attrs) -> Dataset:
    ds = Dataset()
    ds.PixelData = b"\0\0"
    for key, value in attrs.items():
        setattr(ds, key, value)
    return ds


def test_auto_rule_covers_text_prone_modalities_and_sop_classes():
    assert needs_cleaning(_ds(Modality="US"), CleanPixelsMode.AUTO)
    assert needs_cleaning(_ds(Modality="SC"), "auto")
    assert needs_cleaning(_ds(Modality="XC"), "auto")
    assert needs_cleaning(_ds(Modality="CT", SOPClassUID="1.2.840.10008.5.1.4.1.1.7.4"), "auto")
    assert needs_cleaning(_ds(Modality="CT", BurnedInAnnotation="YES"), "auto")
    assert not needs_cleaning(_ds(Modality="CT", SOPClassUID="1.2.840.10008.5.1.4.1.1.2"), "auto")
    assert not needs_cleaning(_ds(Modality="MR", BurnedInAnnotation="NO"), "auto")


def test_on_off_and_no_pixels():
    assert needs_cleaning(_ds(Modality="CT"), CleanPixelsMode.ON)
    assert not needs_cleaning(_ds(Modality="US"), CleanPixelsMode.OFF)
    assert not needs_cleaning(Dataset(), CleanPixelsMode.ON)
