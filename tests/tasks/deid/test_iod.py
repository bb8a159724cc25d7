"""X/Z, X/D, Z/D, X/Z/D follow the Type of the attribute in the file's own IOD (PS3.3 module tables).

The expected Types below are stated from PS3.3 itself (module tables of the named IODs), not from the generator.
"""

from __future__ import annotations

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from tasks.deid.context import DeidContext
from tasks.deid.instance import deidentify_instance
from tasks.deid.iod import choose, load_iod_types

CT, ENHANCED_CT, RT_PLAN = "1.2.840.10008.5.1.4.1.1.2", "1.2.840.10008.5.1.4.1.1.2.1", "1.2.840.10008.5.1.4.1.1.481.5"
BASIC_TEXT_SR, US = "1.2.840.10008.5.1.4.1.1.88.11", "1.2.840.10008.5.1.4.1.1.6.1"

# (SOP class, enclosing sequence or 0, attribute) -> Type in that IOD (1, 2, or None for 3 / not in the IOD)
FACTS = [
    (RT_PLAN, 0, 0x00081070, 2),  # Operators' Name: RT Series module, Type 2
    (CT, 0, 0x00081070, None),  # Operators' Name: General Series module, Type 3
    (US, 0, 0x00081070, None),
    (CT, 0, 0x00080023, 2),  # Content Date: General Image module, Type 2C
    (ENHANCED_CT, 0, 0x00080023, 1),  # Content Date: Multi-frame Functional Groups module, Type 1
    (BASIC_TEXT_SR, 0, 0x00080023, 1),  # Content Date: SR Document General module, Type 1
    (ENHANCED_CT, 0, 0x00181000, 1),  # Device Serial Number: Enhanced General Equipment, Type 1
    (CT, 0, 0x00181000, None),  # Device Serial Number: General Equipment, Type 3
    (CT, 0, 0x00080080, None),  # Institution Name: General Equipment, Type 3
    (CT, 0, 0x00180010, 2),  # Contrast/Bolus Agent: Contrast/Bolus module, Type 2
    (RT_PLAN, 0, 0x300A0006, 2),  # RT Plan Date: RT General Plan, Type 2
    (RT_PLAN, 0, 0x300E0008, 2),  # Reviewer Name: Approval module, Type 2C
    (CT, 0, 0x00102203, 2),  # Patient's Sex Neutered: Patient module, Type 2C
    (BASIC_TEXT_SR, 0x0040A730, 0x0040A032, 1),  # Observation DateTime in content items: Type 1C
    (CT, 0x00081072, 0x00080080, 1),  # Institution Name inside Operator Identification Sequence: Type 1C
]


@pytest.mark.parametrize(("sop_class", "parent", "tag", "expected"), FACTS)
def test_table_agrees_with_the_standard(sop_class, parent, tag, expected):
    assert load_iod_types().for_sop_class(sop_class).get((parent, tag)) == expected


def test_table_records_its_source_and_covers_the_storage_classes():
    types = load_iod_types()
    assert "innolitics/dicom-standard" in types.source and "PS3.3" in types.release
    assert types.sop_classes[RT_PLAN] == "rt-plan" and types.sop_classes[CT] == "ct-image"
    assert len(types.sop_classes) >= 140
    unknown = types.for_sop_class("1.2.3.4.private")  # strictest of all IODs
    assert unknown.get((0, 0x00081070)) == 2 and unknown.get((0, 0x00181000)) == 1


@pytest.mark.parametrize(
    ("code", "attribute_type", "expected"),
    [
        ("X/Z", 2, "Z"), ("X/Z", None, "X"), ("X/Z", 1, "Z"),
        ("X/D", 1, "D"), ("X/D", 2, "D"), ("X/D", None, "X"),
        ("Z/D", 1, "D"), ("Z/D", 2, "Z"), ("Z/D", None, "Z"),
        ("X/Z/D", 1, "D"), ("X/Z/D", 2, "Z"), ("X/Z/D", None, "X"),
    ],
)  # fmt: skip
def test_choice_by_type(code, attribute_type, expected):
    assert choose(code, attribute_type) == expected


def _deid(ds: Dataset, key, options=()) -> Dataset:
    return deidentify_instance(ds, DeidContext.create(key, options=options, clean_pixels="off")).dataset


def test_rt_plan_operators_name_becomes_empty_and_ct_removes_it(key):
    plan = dcmread(get_testdata_file("rtplan.dcm"))
    plan.OperatorsName = "SMITH^ANNA"
    plan.RTPlanDate, plan.RTPlanTime = "20200301", "101500"
    out = _deid(plan, key)
    assert "OperatorsName" in out and out.OperatorsName == ""  # Type 2 in RT Series: present, empty
    bare = _deid(dcmread(get_testdata_file("rtplan.dcm")), key, options=())
    assert bare.RTPlanDate == "19000101"  # X/D on a Type 2 attribute: a dummy keeps it present
    ct = dcmread(get_testdata_file("CT_small.dcm"))
    ct.OperatorsName, ct.DeviceSerialNumber = "SMITH^ANNA", "SN-1"
    out = _deid(ct, key)
    assert "OperatorsName" not in out and "DeviceSerialNumber" not in out  # Type 3 in the CT Image IOD


def test_nested_attribute_uses_its_enclosing_sequence(key):
    ct = dcmread(get_testdata_file("CT_small.dcm"))
    ct.ContrastBolusAgent = "IOPAMIDOL for DOE"
    operator = Dataset()
    operator.InstitutionName = "St Example Hospital"
    ct.OperatorIdentificationSequence = Sequence([operator])  # X/D: removed with its items (Type 3 in CT)
    item = Dataset()
    item.InstitutionName = "St Example Hospital"  # Type 3 inside Referenced Image Sequence items: not in the IOD
    ct.ReferencedImageSequence = Sequence([item])
    out = _deid(ct, key)
    assert out.ContrastBolusAgent == ""  # Z/D, Type 2 in Contrast/Bolus
    assert "OperatorIdentificationSequence" not in out
    assert "InstitutionName" not in out.ReferencedImageSequence[0]
