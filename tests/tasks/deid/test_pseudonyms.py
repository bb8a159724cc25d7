"""Keyed pseudonyms: valid UIDs, deterministic per key, different across keys, injective in practice."""

from __future__ import annotations

import pickle
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from tasks.deid.keys import DeidKey
from tasks.deid.pseudonyms import MAX_OFFSET_DAYS, MIN_OFFSET_DAYS, Pseudonymizer

UID_RE = re.compile(r"^(0|[1-9]\d*)(\.(0|[1-9]\d*))*$")
KEY_A = Pseudonymizer(DeidKey(b"a" * 32))
KEY_B = Pseudonymizer(DeidKey(b"b" * 32))
uids = st.from_regex(r"\A[1-9][0-9]{0,5}(\.[1-9][0-9]{0,8}){1,12}\Z", fullmatch=True)


@settings(max_examples=100, deadline=None)
@given(uids)
def test_uid_is_valid_and_deterministic(u):
    mapped = KEY_A.uid(u)
    assert mapped.startswith("2.25.")
    assert len(mapped) <= 64
    assert UID_RE.match(mapped)
    assert Pseudonymizer(DeidKey(b"a" * 32)).uid(u) == mapped  # fresh instance: no hidden state
    assert KEY_A.uid(u + "\x00") == mapped  # DICOM padding does not change the mapping


@settings(max_examples=60, deadline=None)
@given(uids)
def test_uid_differs_per_key(u):
    assert KEY_A.uid(u) != KEY_B.uid(u)


@settings(max_examples=20, deadline=None)
@given(st.lists(uids, min_size=2, max_size=100, unique=True))
def test_uid_mapping_is_injective(values):
    assert len({KEY_A.uid(v) for v in values}) == len(values)


def test_uid_injective_on_many_similar_inputs():
    values = [f"1.2.840.113619.2.55.3.{i}" for i in range(20000)]
    assert len({KEY_A.uid(v) for v in values}) == len(values)


def test_ids_offsets_and_names():
    pid = KEY_A.patient_id("MRN-0001")
    assert re.fullmatch(r"[A-Z2-7]{16}", pid)
    assert pid == KEY_A.patient_id(" MRN-0001 ")
    assert pid != KEY_B.patient_id("MRN-0001")
    assert KEY_A.accession("ACC1") != KEY_A.patient_id("ACC1")  # separate domains
    offsets = {KEY_A.date_offset_days(f"P{i}", "") for i in range(500)}
    assert all(-MAX_OFFSET_DAYS <= o <= -MIN_OFFSET_DAYS for o in offsets)
    assert len(offsets) > 300
    # empty PatientID falls back to the study UID, and is stable per study
    assert KEY_A.date_offset_days("", "1.2.3") == KEY_A.date_offset_days("", "1.2.3")
    assert KEY_A.pseudo_patient_id("", "1.2.3") == KEY_A.pseudo_patient_id("", "1.2.3 ")
    assert KEY_A.dummy_name(pid) == f"ANON^{pid}"
    assert re.fullmatch(r"[0-9a-f]{32}", KEY_A.source_id("/data/DOE_JOHN/img1.dcm"))


def test_pickles_without_showing_the_key():
    clone = pickle.loads(pickle.dumps(KEY_A))
    assert clone.uid("1.2.3") == KEY_A.uid("1.2.3")
    assert "aaaa" not in repr(KEY_A) and "aaaa" not in repr(KEY_A.key)
