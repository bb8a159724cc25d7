"""The engine on a real CT with planted PHI: every action, VR, option, nesting, private and repeating groups."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from tasks.config import CleanPixelsMode
from tasks.deid.context import DeidContext
from tasks.deid.instance import deidentify_instance
from tasks.deid.options import DeidOption
from tasks.deid.pseudonyms import Pseudonymizer

PHI = {
    "PatientName": "DOE^JOHN",
    "PatientID": "MRN0012345",
    "PatientBirthDate": "19500315",
    "AccessionNumber": "ACC778899",
    "InstitutionName": "St Example Hospital",
    "ReferringPhysicianName": "HOUSE^GREGORY",
    "StationName": "CTROOM7",
    "OperatorsName": "SMITH^ANNA",
    "StudyDescription": "CT chest for John Doe",
    "ProtocolName": "DOE chest protocol",
    "DeviceSerialNumber": "SN-99887766",
    "StationAETitle": "CTAE7",
    "OtherPatientIDs": "OTHER-556677",
}


def planted(ct) -> Dataset:
    for keyword, value in PHI.items():
        setattr(ct, keyword, value)
    ct.StudyDate, ct.SeriesDate, ct.AcquisitionDateTime = "20200301", "20200301", "20200301101500.25"
    ct.StudyTime = "101500"
    ct.PatientAge = "070Y"
    ct.PatientSex = "F"
    ct.EthnicGroup = "GROUPX"
    ref = Dataset()
    ref.ReferencedSOPClassUID = ct.SOPClassUID
    ref.ReferencedSOPInstanceUID = "1.2.3.4.5.6.7.8.9.100"
    deep = Dataset()
    deep.PersonName = "NESTED^NAME"
    deep.ReferencedSOPInstanceUID = "1.2.3.4.5.6.7.8.9.200"
    deep.Date = "20200302"
    inner = Dataset()
    inner.ContentSequence = Sequence([deep])
    ref.ContentSequence = Sequence([inner])  # 3 levels below the top
    ct.ReferencedImageSequence = Sequence([ref])
    ct.add_new(0x00291010, "LO", "PRIVATE PHI VALUE")
    ct.add_new(0x50000010, "US", 1)  # curve group
    ct.add_new(0x60000010, "US", 512)  # overlay group
    ct.add_new(0x60003000, "OW", b"\x00" * 8)
    ct.add_new(0x60004000, "LT", "OVERLAY COMMENT")
    return ct


def run(ct, key, *options: DeidOption, defaults: bool = True):
    from tasks.deid.options import DEFAULT_OPTIONS

    opts = set(DEFAULT_OPTIONS if defaults else ()) | set(options)
    return deidentify_instance(planted(ct), DeidContext.create(key, options=opts, clean_pixels=CleanPixelsMode.OFF))


def test_default_profile(ct, key):
    original = {"study": ct.StudyInstanceUID, "series": ct.SeriesInstanceUID, "sop": ct.SOPInstanceUID}
    result = run(ct, key)
    ds = result.dataset
    pseudo = Pseudonymizer(key)
    # PatientID / name / accession pseudonyms
    assert ds.PatientID == pseudo.patient_id("MRN0012345") == result.patient_id
    assert ds.PatientName == f"ANON^{result.patient_id}"
    assert ds.AccessionNumber == pseudo.accession("ACC778899")
    # removed (X), emptied (Z), dummy (D)
    for keyword in (
        "InstitutionName",
        "StationName",
        "OperatorsName",
        "OtherPatientIDs",
        "ProtocolName",
        "StationAETitle",
        "DeviceSerialNumber",  # X/Z/D: Type 3 in the CT Image IOD
    ):
        assert keyword not in ds, keyword
    assert ds.ReferringPhysicianName == "" and ds.PatientBirthDate == ""
    assert "StudyDescription" not in ds  # X without clean-descriptors
    # UIDs, including the file meta and nested references
    assert ds.StudyInstanceUID == pseudo.uid(original["study"]) == result.study_id
    assert ds.SOPInstanceUID == pseudo.uid(original["sop"]) == ds.file_meta.MediaStorageSOPInstanceUID
    assert ds.SOPClassUID == "1.2.840.10008.5.1.4.1.1.2"  # registered UIDs are kept
    ref = ds.ReferencedImageSequence[0]
    assert ref.ReferencedSOPInstanceUID == pseudo.uid("1.2.3.4.5.6.7.8.9.100")
    deep = ref.ContentSequence[0].ContentSequence[0]
    assert deep.ReferencedSOPInstanceUID == pseudo.uid("1.2.3.4.5.6.7.8.9.200")
    assert deep.PersonName == "ANONYMOUS"  # D at depth 3
    # dates shifted by the patient's offset (intervals kept), times kept
    offset = pseudo.date_offset_days("MRN0012345", "")
    assert result.date_offset_days == offset
    import datetime as dt

    shifted = (dt.date(2020, 3, 1) + dt.timedelta(days=offset)).strftime("%Y%m%d")
    assert ds.StudyDate == shifted and ds.AcquisitionDateTime == shifted + "101500.25"
    assert deep.Date == (dt.date(2020, 3, 2) + dt.timedelta(days=offset)).strftime("%Y%m%d")
    assert ds.StudyTime == "101500"
    # patient characteristics retained (age capped at 90), private and repeating groups removed
    assert ds.PatientAge == "070Y" and ds.PatientSex == "F" and ds.EthnicGroup == "GROUPX"
    assert not any(t.group % 2 for t in ds.keys())  # noqa: SIM118
    assert not any(0x5000 <= t.group <= 0x60FF and t.group >> 8 in (0x50, 0x60) for t in ds.keys())  # noqa: SIM118
    # marking
    assert ds.PatientIdentityRemoved == "YES"
    codes = [item.CodeValue for item in ds.DeidentificationMethodCodeSequence]
    assert codes == ["113100", "113107", "113108"] == result.options_applied
    assert ds.LongitudinalTemporalInformationModified == "MODIFIED"
    assert result.relpath == f"{result.patient_id}/{result.study_id}/{result.series_id}/{result.instance_id}.dcm"
    assert result.action_counts["X"] > 5 and result.action_counts["U"] >= 5


def test_bare_basic_profile_removes_characteristics_and_dates(ct, key):
    ds = run(ct, key, defaults=False).dataset
    assert ds.StudyDate == ""  # Z
    assert "PatientAge" not in ds and "EthnicGroup" not in ds
    assert ds.PatientSex == ""  # Z without the option
    assert "AcquisitionDateTime" not in ds  # X/Z/D, not in the CT Image IOD (dummy in enhanced IODs: test_iod.py)
    assert [i.CodeValue for i in ds.DeidentificationMethodCodeSequence] == ["113100"]
    assert ds.LongitudinalTemporalInformationModified == "REMOVED"


@pytest.mark.parametrize(
    ("option", "code", "check"),
    [
        (
            DeidOption.RETAIN_DEVICE_IDENTITY,
            "113109",
            lambda ds: ds.StationName == "CTROOM7" and ds.StationAETitle != "CTAE7",
        ),
        (DeidOption.RETAIN_INSTITUTION_IDENTITY, "113112", lambda ds: ds.InstitutionName == "St Example Hospital"),
        (DeidOption.CLEAN_DESCRIPTORS, "113105", lambda ds: ds.StudyDescription == "CT chest for"),
        (
            DeidOption.RETAIN_UIDS,
            "113110",
            lambda ds: ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID == "1.2.3.4.5.6.7.8.9.100",
        ),
        (DeidOption.RETAIN_LONGITUDINAL_FULL_DATES, "113106", lambda ds: ds.StudyDate == "20200301"),
        (DeidOption.RETAIN_SAFE_PRIVATE, "113111", lambda ds: 0x00291010 not in ds),  # not on the safe list
    ],
)
def test_each_option(ct, key, option, code, check):
    ds = run(ct, key, option).dataset
    assert check(ds)
    assert code in [i.CodeValue for i in ds.DeidentificationMethodCodeSequence]


def test_safe_private_kept_with_its_creator(ct, key):
    block = ct.private_block(0x0019, "SIEMENS MR HEADER", create=True)
    block.add_new(0x0C, "IS", "1000")  # B_value: on the safe list
    block.add_new(0x10, "LO", "SECRET")  # not on the list
    kept, secret, creator = block.get_tag(0x0C), block.get_tag(0x10), block.block_start >> 8 | 0x00190000
    ds = run(ct, key, DeidOption.RETAIN_SAFE_PRIVATE).dataset
    assert ds[kept].value == "1000" and ds[creator].value == "SIEMENS MR HEADER"
    assert secret not in ds
    assert [e.tag for e in ds if e.tag.group % 2] == [creator, kept]  # GE blocks of CT_small are gone


def test_age_is_capped_and_derived(ct, key):
    ct.PatientAge = "095Y"
    result = deidentify_instance(ct, DeidContext.create(key, clean_pixels="off"))
    assert result.dataset.PatientAge == "090Y"


def test_age_derived_from_original_dates(key):
    from pydicom import dcmread
    from pydicom.data import get_testdata_file

    ds = dcmread(get_testdata_file("CT_small.dcm"))
    del ds.PatientAge
    ds.PatientBirthDate, ds.StudyDate = "19800615", "20200614"
    out = deidentify_instance(ds, DeidContext.create(key, clean_pixels="off")).dataset
    assert out.PatientAge == "039Y" and out.PatientBirthDate == ""


def test_same_patient_same_offset_across_studies(key):
    from pydicom import dcmread
    from pydicom.data import get_testdata_file

    ctx = DeidContext.create(key, clean_pixels="off")
    a, b = dcmread(get_testdata_file("CT_small.dcm")), dcmread(get_testdata_file("MR_small.dcm"))
    a.PatientID = b.PatientID = "SAMEPATIENT"
    a.StudyDate, b.StudyDate = "20200101", "20200111"
    ra, rb = deidentify_instance(a, ctx), deidentify_instance(b, ctx)
    assert ra.patient_id == rb.patient_id and ra.date_offset_days == rb.date_offset_days
    import datetime as dt

    da = dt.datetime.strptime(ra.dataset.StudyDate, "%Y%m%d")
    db = dt.datetime.strptime(rb.dataset.StudyDate, "%Y%m%d")
    assert (db - da).days == 10


def test_values_stored_as_un_are_mapped_or_removed(ct, key):
    from pydicom.dataelem import DataElement

    ct[0x0020000D] = DataElement(0x0020000D, "UN", b"1.2.3.4.5.6\x00")  # Study Instance UID as UN
    ct[0x00181030] = DataElement(0x00181030, "UN", b"DOE protocol")  # Protocol Name as UN
    ctx = DeidContext.create(key, options={DeidOption.CLEAN_DESCRIPTORS}, clean_pixels="off")
    ds = deidentify_instance(ct, ctx).dataset
    assert ds.StudyInstanceUID == Pseudonymizer(key).uid("1.2.3.4.5.6")
    assert 0x00181030 not in ds


def test_vendor_class_uids_are_kept_instance_uids_mapped(ct, key):
    ct.SOPClassUID = "1.3.12.2.1107.5.9.1"  # a private (vendor) SOP class: names what the object is
    ct.IrradiationEventUID = "1.2.3.999"  # an instance UID the table does not list with U in every release
    ds = deidentify_instance(ct, DeidContext.create(key, clean_pixels="off")).dataset
    assert ds.SOPClassUID == "1.3.12.2.1107.5.9.1" == ds.file_meta.MediaStorageSOPClassUID
    assert ds.IrradiationEventUID == Pseudonymizer(key).uid("1.2.3.999")
