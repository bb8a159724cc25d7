"""Multi-pattern search: encodings, case, and word boundaries."""

from __future__ import annotations

from tasks.audit.search import Matcher


def test_finds_in_every_encoding_and_case() -> None:
    m = Matcher({"zabrowski", "123456"})
    for encoding in ("utf-8", "latin-1", "utf-16-le", "utf-16-be"):
        data = b"\x00\x01" + "Name: ZABROWSKI, id 123456.".encode(encoding) + b"\xff"
        found = m.find_bytes(data)
        assert found, encoding
        assert any(hits["zabrowski"] and hits["123456"] for hits in found.values()), encoding


def test_boundaries_stop_false_hits() -> None:
    m = Matcher({"123456", "anne"})
    assert not m.find("2.25.991234567812345")  # inside a longer number
    assert not m.find("annealing")
    assert m.find("id=123456;")["123456"] == 1
    assert m.find("ANNE^SMITH")["anne"] == 1


def test_min_length_drops_short_patterns() -> None:
    m = Matcher({"abcd", "abcdefgh"}, min_length=8)
    assert set(m.find("xx abcd abcdefgh")) == {"abcdefgh"}


def test_empty_matcher() -> None:
    assert not Matcher(set()).find("anything")
    assert not Matcher(set()).find_bytes(b"anything")


def test_boundaries_hold_in_every_encoding() -> None:
    m = Matcher({"white"})
    for encoding in ("utf-8", "latin-1", "utf-16-le", "utf-16-be"):
        assert not m.find_bytes(b"\x00" + "whitespace, Whitehall".encode(encoding)), encoding
        assert m.find_bytes(b"\x00" + "op: WHITE^J".encode(encoding)), encoding
