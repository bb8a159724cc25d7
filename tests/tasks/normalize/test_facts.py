"""Scan facts: MR weighting from TE/TR, from enhanced MR functional groups, or from the sequence name."""

from __future__ import annotations

import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset

from tasks.normalize.facts import mr_weighting, scan_facts, weighting_from_name


def test_weighting_rules() -> None:
    assert mr_weighting(15, 500) == "T1" and mr_weighting(100, 4000) == "T2" and mr_weighting(20, 3000) == "PD"
    assert mr_weighting(None, 500) is None
    assert weighting_from_name("T1TFE") == "T1" and weighting_from_name("t2_tse_tra") == "T2"
    assert weighting_from_name("FLAIR_3D") == "T2" and weighting_from_name("GRE") is None


def test_enhanced_mr_without_te_tr_reads_its_sequence_name() -> None:
    facts = scan_facts(pydicom.dcmread(get_testdata_file("emri_small.dcm")))
    assert facts["mr_sequence_name"] == "T1TFE" and facts["mr_weighting"] == "T1"
    assert facts["mr_scanning_sequence"] == "GRADIENT"


def test_enhanced_mr_functional_groups_give_te_and_tr() -> None:
    ds = Dataset()
    ds.Modality = "MR"
    echo, timing, group = Dataset(), Dataset(), Dataset()
    echo.EffectiveEchoTime = 95.0
    timing.RepetitionTime = 5000.0
    group.MREchoSequence, group.MRTimingAndRelatedParametersSequence = [echo], [timing]
    ds.SharedFunctionalGroupsSequence = [group]
    facts = scan_facts(ds)
    assert facts["mr_echo_time"] == 95.0 and facts["mr_repetition_time"] == 5000.0 and facts["mr_weighting"] == "T2"


def test_classic_mr_uses_its_own_te_and_tr() -> None:
    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    facts = scan_facts(ds)
    assert facts["mr_echo_time"] == float(ds.EchoTime) and facts["mr_weighting"] is not None
