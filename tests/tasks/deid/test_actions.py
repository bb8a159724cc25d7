"""Dummy/empty values per VR, date/age/text cleaning (the IOD choice of combined codes: test_iod.py)."""

from __future__ import annotations

import pytest

from tasks.deid.actions import (
    DUMMY_BY_VR,
    age_between,
    cap_age,
    dummy_value,
    empty_value,
    identifier_pattern,
    shift_da,
    shift_dt,
)


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


def test_identifier_pattern_matches_values_and_their_parts_case_insensitively():
    pattern = identifier_pattern(["DOE^JOHN", "MRN12345", "x"])
    assert pattern.fullmatch("john") and pattern.fullmatch("Doe") and pattern.fullmatch("mrn12345")
    assert not pattern.fullmatch("CHEST") and not pattern.fullmatch("x")
    assert identifier_pattern(["", "ab"]) is None
