"""deid-table keeps only what it is told to: ids join the images, dates move by their offset, ages are capped,
every other column is dropped, identifying-looking kept columns are refused, training reads only such tables."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil

import pandas as pd
import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from typer.testing import CliRunner

from flows.cli import app
from models.table import LabelSpec, _label_columns, read_labels
from tasks.deid.context import DeidContext
from tasks.deid.instance import deidentify_instance
from tasks.deid.keys import write_new_key
from tasks.deid.pseudonyms import Pseudonymizer
from tasks.deid.table import cap_age_text, deidentify_table, record_path, shift_date_text
from tasks.errors import ConfigError, InputError

#: The outcomes export of the issue: everything but the id and the study date must go unless named.
EXPORT = (
    "mrn,study_date,birth_date,address,notes,age,patient_name,event\n"
    "MRN42,2020-01-10,1931-04-07,12 Quillmore Lane,seen by Dr Zyqvarn,95,DOE^JANE,1\n"
    "MRN43,2020-02-11,1960-01-01,3 Vantage Road,stable,61,ROE^RICHARD,0\n"
)
PLANTED = ("1931-04-07", "Quillmore", "Zyqvarn", "DOE", "ROE", "MRN42", "Vantage")


def _run(tmp_path, key, text=EXPORT, **kwargs):
    (tmp_path / "in.csv").write_text(text)
    out = tmp_path / "out.csv"
    kwargs.setdefault("date_cols", ["study_date"])
    summary = deidentify_table(tmp_path / "in.csv", out, Pseudonymizer(key), id_col="mrn", **kwargs)
    return summary, out


def test_table_joins_the_images(tmp_path, key):
    ds = dcmread(get_testdata_file("CT_small.dcm"))
    ds.PatientID, ds.StudyDate = "MRN42", "20200110"
    image = deidentify_instance(ds, DeidContext.create(key, clean_pixels="off"))
    text = (
        "mrn,patient_name,study_date,death_date,event,secret\n"
        "MRN42,DOE^JANE,2020-01-10,20210110,1,x\n,NOBODY,2020-01-01,,0,y\n"
    )
    summary, out = _run(tmp_path, key, text, date_cols=["study_date", "death_date"], keep=["event"])
    lines = out.read_text().splitlines()
    assert lines[0] == "mrn,study_date,death_date,event"
    mrn, study_date, death_date, _event = lines[1].split(",")
    assert mrn == image.patient_id == image.dataset.PatientID
    assert study_date.replace("-", "") == image.dataset.StudyDate
    shifted_death = dt.datetime.strptime(death_date, "%Y%m%d").date()
    assert (shifted_death - dt.date.fromisoformat(study_date)).days == 366  # interval kept
    assert summary["rows"] == 1 and summary["dropped_rows"] == 1
    assert summary["dropped_columns"] == ["patient_name", "secret"]


def test_every_column_not_named_is_dropped(tmp_path, key):
    summary, out = _run(tmp_path, key)
    assert out.read_text().splitlines()[0] == "mrn,study_date"
    assert summary["dropped_columns"] == ["birth_date", "address", "notes", "age", "patient_name", "event"]
    text = out.read_text() + record_path(out).read_text()
    assert not [p for p in PLANTED if p in text]
    record = json.loads(record_path(out).read_text())
    assert record["columns"] == ["mrn", "study_date"] and record["roles"]["kept"] == []


def test_age_columns_are_capped_at_90_as_the_images(tmp_path, key):
    summary, out = _run(tmp_path, key, keep=["event"], age_cols=["age"])
    frame = pd.read_csv(out, dtype=str)
    assert frame["age"].tolist() == ["90", "61"] and summary["ages_capped"] == 1
    assert cap_age_text("095Y") == "090Y" and cap_age_text("89.9") == "89.9" and cap_age_text("old") is None
    with pytest.raises(InputError, match="line 2, column age: not an age") as error:
        _run(tmp_path, key, EXPORT.replace(",95,", ",ninety-five,"), age_cols=["age"])
    assert "ninety" not in str(error.value)


@pytest.mark.parametrize(
    ("column", "reason"),
    [
        ("birth_date", "holds dates"),
        ("notes", "holds long free text"),
        ("address", "holds long free text"),
        ("phone", "holds phone- or ID-like values"),
        ("other_id", "holds phone- or ID-like values"),
        ("contact", "holds values equal to a name or an id"),
        ("physician", "holds person names"),
        ("age", "looks like an age"),
    ],
)
def test_identifying_kept_columns_are_refused_unless_forced(tmp_path, key, column, reason):
    text = (
        "mrn,study_date,birth_date,notes,address,phone,other_id,contact,physician,age,patient_name\n"
        "MRN42,2020-01-10,04/07/1931,seen by Dr Zyqvarn on the ward today,12 Quillmore Lane Upper Vantage,"
        "+1 (555) 010-9988,AB1234567,Jane,Dr Quillmore,95,DOE^JANE\n"
    )
    with pytest.raises(ConfigError, match=f"column {column} {reason}") as error:
        _run(tmp_path, key, text, keep=[column])
    message = str(error.value)
    assert f"--force-keep {column}" in message
    assert not [p for p in ("1931", "Zyqvarn", "Quillmore", "555", "1234567", "Jane", "95") if p in message]
    summary, out = _run(tmp_path, key, text, keep=[column], force_keep=[column])
    assert summary["forced"] == [column] and column in out.read_text().splitlines()[0]


def test_plain_outcome_columns_pass(tmp_path, key):
    text = "mrn,study_date,event,ef,sex,group\nMRN42,2020-01-10,1,55.2,F,control\nMRN43,2020-01-11,0,31.25,M,case\n"
    summary, _ = _run(tmp_path, key, text, keep=["event", "ef", "sex", "group"])
    assert summary["columns"] == ["mrn", "study_date", "event", "ef", "sex", "group"]


def test_a_table_without_a_header_row_is_refused_without_printing_its_first_patient(tmp_path, key):
    headless = EXPORT.split("\n", 1)[1]  # the first patient's row becomes the "column names"
    with pytest.raises(InputError, match="first row does not look like column names") as refused:
        _run(tmp_path, key, text=headless)
    assert not [v for v in PLANTED if v in str(refused.value)] and "1960" not in str(refused.value)
    assert not (tmp_path / "out.csv").exists()


def test_naming_errors(tmp_path, key):
    with pytest.raises(ConfigError, match="nope not in the table"):
        _run(tmp_path, key, keep=["nope"])
    with pytest.raises(ConfigError, match="more than one"):
        _run(tmp_path, key, keep=["study_date"])
    with pytest.raises(ConfigError, match="not given with --keep"):
        _run(tmp_path, key, force_keep=["notes"])


def test_training_reads_only_unchanged_deid_table_output(tmp_path, key):
    _, out = _run(tmp_path, key, keep=["event"], age_cols=["age"])
    frame = read_labels(out)
    spec = LabelSpec("survival", "mrn", "study_date", "study_date", "event", tabular=("age",))
    table = _label_columns(frame, spec)
    assert "x_age" in table and set(table["x_age"]) == {90, 61}
    assert "sex" not in table and "group" not in table  # never kept, so no subgroup can use them
    with pytest.raises(ValueError, match=r"lacks column.*address.*--keep"):
        _label_columns(frame, LabelSpec("survival", "mrn", "study_date", "study_date", "event", tabular=("address",)))
    out.write_text(out.read_text().replace("mrn,study_date", "mrn,study_date,address", 1))
    with pytest.raises(ValueError, match="changed after"):
        read_labels(out)
    shutil.copy(tmp_path / "in.csv", tmp_path / "raw.csv")
    with pytest.raises(ValueError, match="no de-identification record"):
        read_labels(tmp_path / "raw.csv")


def test_shift_date_text_formats():
    assert shift_date_text("2020-03-01T10:00", -1) == "2020-02-29T10:00"
    assert shift_date_text("20200301", 1) == "20200302"
    assert shift_date_text("01/03/2020", 1) is None


def test_cli_keygen_deid_table_and_errors(tmp_path):
    runner = CliRunner()
    key = tmp_path / "key"
    assert runner.invoke(app, ["keygen", str(key)]).exit_code == 0
    assert oct(os.stat(key).st_mode & 0o777) == "0o600"
    (tmp_path / "in.csv").write_text(EXPORT)
    args = ["deid-table", str(tmp_path / "in.csv"), str(tmp_path / "out.csv"), "--id-col", "mrn"]
    ok = runner.invoke(app, [*args, "--date-cols", "study_date", "--keep", "event", "--age-cols", "age",
                             "--key-file", str(key)])  # fmt: skip
    assert ok.exit_code == 0, ok.output
    assert "dropped columns: birth_date, address, notes, patient_name" in ok.output
    assert "1 ages capped" in ok.output and not [p for p in PLANTED if p in ok.output]
    refused = runner.invoke(app, [*args, "--keep", "notes", "--key-file", str(key)])
    assert refused.exit_code == 2 and "--force-keep notes" in refused.output and "Zyqvarn" not in refused.output
    bad = runner.invoke(app, [*args, "--date-cols", "nope", "--key-file", str(key)])
    assert bad.exit_code == 2 and "not in the table" in bad.output
    missing = runner.invoke(app, args, env={"MEDFLOW_DEID_KEY": ""})
    assert missing.exit_code == 2 and "keygen" in missing.output
    (tmp_path / "dicom").mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm"), tmp_path / "dicom" / "x")
    write_new_key(tmp_path / "k2")
    result = runner.invoke(
        app, ["deid", str(tmp_path / "dicom"), str(tmp_path / "o"), "--key-file", str(tmp_path / "k2"),
              "--clean-pixels", "off"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "o").rglob("*.dcm"))) == 1
