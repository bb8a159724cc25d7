"""Free text under a C action keeps only what is known not to identify (coded terms, imaging words), else goes."""

from __future__ import annotations

from pydicom import dcmread
from pydicom.data import get_testdata_file

from tasks.deid.context import DeidContext
from tasks.deid.instance import deidentify_instance
from tasks.deid.options import DEFAULT_OPTIONS, DeidOption
from tasks.deid.vocabulary import clean_descriptor, clean_value, coded_terms, descriptor_words


def _deid(ds, key, *extra: DeidOption):
    ctx = DeidContext.create(key, options={*DEFAULT_OPTIONS, *extra}, clean_pixels="off")
    return deidentify_instance(ds, ctx).dataset


def _ct():
    ds = dcmread(get_testdata_file("CT_small.dcm"))
    ds.PatientName, ds.PatientID = "ZYQVARN^OBLESTINE", "MRN8827361"
    return ds


def test_patient_characteristics_keep_only_coded_terms(key):
    ds = _ct()
    ds.Allergies = ["Iodine", "penicillin rash, told Dr House", "NKDA", "Gadolinium"]
    ds.PreMedication = ["Midazolam", "Midazolam given by nurse Joy"]
    ds.PatientState = "comatose; wife Oblestine at bedside"
    ds.SpecialNeeds = "wheelchair"
    out = _deid(ds, key)  # retain-patient-characteristics is a default option: C on these four
    assert list(out.Allergies) == ["Iodine", "NKDA", "Gadolinium"]
    assert out.PreMedication == "Midazolam"
    assert "PatientState" not in out and "SpecialNeeds" not in out  # the standard names no value set


def test_allergies_with_nothing_known_are_removed(key):
    ds = _ct()
    ds.Allergies = "Allergic to the neighbour's cat (Zyqvarn)"
    assert "Allergies" not in _deid(ds, key)


def test_clean_descriptors_keep_imaging_words_only(key):
    ds = _ct()
    ds.StudyDescription = "CT chest for Oblestine Zyqvarn 2020-03-01 MRN 1234567"
    ds.SeriesDescription = "AX T1 POST C+ 5mm"
    ds.ProtocolName = "ZYQVARN chest protocol"
    ds.ImageComments = "seen by Dr Quillmore at 555-0199"
    ds.ReasonForTheAttributeModification = "CORRECT"
    out = _deid(ds, key, DeidOption.CLEAN_DESCRIPTORS)
    assert out.StudyDescription == "CT chest for"
    assert out.SeriesDescription == "AX T1 POST C+ 5mm"
    assert out.ProtocolName == "chest protocol"
    assert "ImageComments" not in out  # nothing known left: the basic action X
    assert out.ReasonForTheAttributeModification == "CORRECT"
    text = str(out)
    for planted in ("Zyqvarn", "ZYQVARN", "Oblestine", "Quillmore", "1234567", "2020", "555"):
        assert planted not in text


def test_vocabulary_rules():
    assert "iodine" in coded_terms(0x00102110) and "midazolam" in coded_terms(0x00400012)
    words = descriptor_words()
    assert {"chest", "abdomen", "ct", "mr", "apical", "t1"} <= words
    assert not {"willis", "boyd", "house", "smith", "john"} & words
    assert clean_descriptor("Echo A4C 2020/03/01", None) == "Echo A4C"
    assert clean_descriptor("12345 67", None) == ""  # numbers alone say nothing
    assert clean_value(0x00380500, "stable", None) == ""
    assert clean_value(0x04000565, "COERCE", None) == "COERCE" and clean_value(0x04000565, "DOE", None) == ""
