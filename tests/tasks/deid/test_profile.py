"""The project's Annex E table covers every row of the standard's table, with the same action codes."""

from __future__ import annotations

import json
from pathlib import Path

from tasks.deid.actions import COMBINATIONS, SINGLE_CODES
from tasks.deid.generate_profile import convert_row, generate
from tasks.deid.options import DEFAULT_OPTIONS, DeidOption
from tasks.deid.profile import TABLE_FILE, compile_rules, load_profile, pattern_action

REFERENCE = Path(__file__).parent / "data" / "ps3.15-annex-e-table.json"  # copy of innolitics' table (MIT)


def test_every_row_of_the_standard_has_an_action():
    reference = json.loads(REFERENCE.read_text())
    assert len(reference) == 621
    ours = load_profile().by_tag()
    assert len(ours) == 621
    for row in reference:
        converted = convert_row(row)
        action = ours[converted["tag"]]
        assert action.basic == row["basicProfile"], row["tag"]
        assert action.basic in SINGLE_CODES | COMBINATIONS
        assert dict(action.options) == converted["options"], row["tag"]


def test_generated_file_is_reproducible(tmp_path: Path):
    out = tmp_path / "annex_e.json"
    generate(REFERENCE, out)
    assert json.loads(out.read_text()) == json.loads(TABLE_FILE.read_text())


def test_every_listed_tag_compiles_to_an_engine_operation():
    rules = compile_rules(DEFAULT_OPTIONS)
    ops = {"X", "Z", "D", "U", "K", "RECURSE", "SHIFT", "AGE", "AEID", "TEXT", "PID", "PNAME", "ACC", "MAPUID"}
    for action in load_profile().actions:
        if action.is_pattern:
            assert pattern_action(load_profile(), action.tag, DEFAULT_OPTIONS) == "X"
            continue
        op, _ = rules[int(action.tag, 16)]
        assert op in ops, action.tag


def test_options_change_the_compiled_operation():
    basic = compile_rules(())
    assert basic[0x00080020][0] == "Z"  # Study Date
    assert compile_rules({DeidOption.RETAIN_LONGITUDINAL_MODIFIED_DATES})[0x00080020][0] == "SHIFT"
    assert compile_rules({DeidOption.RETAIN_LONGITUDINAL_FULL_DATES})[0x00080020][0] == "K"
    assert basic[0x00101010][0] == "X"  # Patient's Age
    assert compile_rules({DeidOption.RETAIN_PATIENT_CHARACTERISTICS})[0x00101010][0] == "AGE"
    assert basic[0x00181000][0] == "D"  # Device Serial Number (X/Z/D, type 1 in enhanced equipment)
    assert compile_rules({DeidOption.RETAIN_DEVICE_IDENTITY})[0x00181000][0] == "K"
    assert compile_rules({DeidOption.RETAIN_DEVICE_IDENTITY})[0x00080055][0] == "AEID"  # Station AE Title: C
    assert basic[0x00080080][0] == "X"  # Institution Name
    assert compile_rules({DeidOption.RETAIN_INSTITUTION_IDENTITY})[0x00080080][0] == "K"
    assert basic[0x00181030][0] == "X"  # Protocol Name (X/D)
    assert compile_rules({DeidOption.CLEAN_DESCRIPTORS})[0x00181030][0] == "TEXT"
    assert basic[0x00080018][0] == "U"
    assert compile_rules({DeidOption.RETAIN_UIDS})[0x00080018][0] == "K"
    # modified dates win over a K of another option on a date (no real date leaks with device identity)
    both = compile_rules({DeidOption.RETAIN_DEVICE_IDENTITY, DeidOption.RETAIN_LONGITUDINAL_MODIFIED_DATES})
    assert both[0x0018700C][0] == "SHIFT"
