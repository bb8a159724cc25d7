"""Each action code, the combination rule, dummy/empty values per VR, date/age/text cleaning."""

from __future__ import annotations

import pytest

from tasks.deid.actions import (
    DUMMY_BY_VR,
    TYPE1_IN_COMMON_IODS,
    TYPE2_IN_COMMON_IODS,
    age_between,
    cap_age,
    dummy_value,
    empty_value,
    identifier_pattern,
    resolve_combination,
    scrub_text,
    shift_da,
    shift_dt,
)


@pytest.mark.parametrize("code", ["X", "Z", "D", "U", "K", "C"])
def test_single_codes_are_themselves(code):
    assert resolve_combination(code, 0x00100010) == code


@pytest.mark.parametrize(
    ("code", "tag", "expected"),
    [
        ("X/Z", 0x00400555, "Z"),  # Acquisition Context Sequence: type 2 -> stays, empty
        ("X/Z", 0x22000005, "X"),  # Barcode Value: not type 1/2 -> removed
        ("X/D", 0x300A0006, "D"),  # RT Plan Date: type 2 -> dummy
        ("X/D", 0x00181030, "X"),  # Protocol Name -> removed
        ("Z/D", 0x00080023, "D"),  # Content Date: type 1 in SR -> dummy
        ("Z/D", 0x00700084, "Z"),  # Content Creator's Name: type 2 -> empty
        ("X/Z/D", 0x00181000, "D"),  # Device Serial Number: type 1 -> dummy
        ("X/Z/D", 0x00080080, "X"),  # Institution Name -> removed
        ("X/Z/U*", 0x00081140, "U*"),  # Referenced Image Sequence -> kept, UIDs replaced
    ],
)
def test_combination_rule(code, tag, expected):
    assert resolve_combination(code, tag) == expected


def test_type_sets_are_disjoint_and_unknown_code_fails():
    assert not TYPE1_IN_COMMON_IODS & TYPE2_IN_COMMON_IODS
    with pytest.raises(ValueError):
        resolve_combination("Q/Z", 0x00100010)


@pytest.mark.parametrize("vr", sorted(DUMMY_BY_VR))
def test_dummy_and_empty_per_vr(vr):
    from pydicom.dataelem import DataElement

    for value in (dummy_value(vr), empty_value(vr)):
        elem = DataElement(0x00100010 if vr == "PN" else 0x00091001, vr, value)
        assert vr == elem.VR
    assert empty_value("SQ") == []


def test_shift_da_keeps_intervals_and_precision():
    assert shift_da("20200301", -1) == "20200229"
    assert shift_da("20200301\\20200305", -10) == "20200220\\20200224"
    assert shift_da("202003", -31) == "202001"
    assert shift_da("20200101-20200201", 1) == "20200102-20200202"
    assert shift_da("", 5) == ""
    assert shift_da("2020-03-01", 1) is None
    assert shift_da("notadate", 1) is None


def test_shift_dt_keeps_time_and_offset():
    assert shift_dt("20200301123000.5+0100", -1) == "20200229123000.5+0100"
    assert shift_dt("2020", 366) == "2021"
    assert shift_dt("2020x", 1) is None


def test_age_cap_and_derivation():
    assert cap_age("045Y") == "045Y"
    assert cap_age("095Y") == "090Y"
    assert cap_age("1200M") is None
    assert cap_age("006M") == "006M"
    assert age_between("19800615", "20200614") == "039Y"
    assert age_between("19800615", "20200615") == "040Y"
    assert age_between("19200101", "20200101") == "090Y"
    assert age_between("20200101", "20200301") == "002M"
    assert age_between("20200101", "20200110") == "009D"
    assert age_between("20200101", "20190101") is None


def test_scrub_text_removes_identifiers_case_insensitively():
    pattern = identifier_pattern(["DOE^JOHN", "MRN12345", "x"])
    assert scrub_text("Follow-up of John Doe, mrn12345", pattern) == "Follow-up of *** ***, ***"
    assert scrub_text("CHEST PA", pattern) == "CHEST PA"
    assert identifier_pattern(["", "ab"]) is None
