"""The pattern rule: what counts as an identifying value and which variants are searched."""

from __future__ import annotations

import pytest

from tasks.audit.values import date_variants, is_identifying, name_variants, variants


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("john", True),
        ("doe", False),  # fewer than 4 letters or digits
        ("123456", True),  # an MRN-like number
        ("12345", False),  # too few digits
        ("000000", False),  # one repeated digit
        ("-11.200000", False),  # measurement
        ("1.000000", False),
        ("2024-03-15", True),
        ("1.2.840.99999.1", True),
        ("yes", False),
        ("anonymous", False),
        ("ultrasound", False),
        ("1ct1", True),
        ("last", False),  # a name-field label (pydicom's placeholder "Last^First^mid^pre"), not a name
        ("first", False),
        ("last^first^mid^pre", True),  # the whole placeholder name still counts
    ],
)
def test_is_identifying(pattern: str, expected: bool) -> None:
    assert is_identifying(pattern) is expected


def test_date_variants_cover_written_forms() -> None:
    out = date_variants("20240315")
    assert {"20240315", "2024-03-15", "15.03.2024", "03/15/2024", "15/03/2024"} <= out
    assert date_variants("20241315") == set()  # not a calendar date
    assert date_variants("abc") == set()


def test_name_variants() -> None:
    out = name_variants("Quentin^Zabrowski^Maria")
    assert {"quentin^zabrowski^maria", "quentin zabrowski maria", "zabrowski maria quentin"} <= out
    assert {"quentin", "zabrowski", "maria"} <= out


def test_variants_by_vr() -> None:
    assert variants("120000.000", "TM") == set()
    assert variants("1.2.840.10008.1.2.1", "UI") == set()  # a well-known transfer syntax UID
    assert variants("1.2.826.0.1.3680043.8.498.123", "UI") == {"1.2.826.0.1.3680043.8.498.123"}
    assert "2003-07-16" in variants("20030716", "DA")
    assert "2003-07-16" in variants("20030716101010.5", "DT")
    assert variants("  St. Elsewhere   Hospital ", "LO") == {"st. elsewhere hospital"}
    assert variants("NO", "CS") == set()
