"""deid-table: ids equal the images' pseudonymous PatientID, dates move by the images' offset, names dropped."""

from __future__ import annotations

import datetime as dt
import os
import shutil

from pydicom import dcmread
from pydicom.data import get_testdata_file
from typer.testing import CliRunner

from flows.cli import app
from tasks.deid.context import DeidContext
from tasks.deid.instance import deidentify_instance
from tasks.deid.keys import write_new_key
from tasks.deid.pseudonyms import Pseudonymizer
from tasks.deid.table import deidentify_table, shift_date_text


def test_table_joins_the_images(tmp_path, key):
    ds = dcmread(get_testdata_file("CT_small.dcm"))
    ds.PatientID, ds.StudyDate = "MRN42", "20200110"
    image = deidentify_instance(ds, DeidContext.create(key, clean_pixels="off"))
    table = tmp_path / "outcomes.csv"
    table.write_text(
        "mrn,patient_name,study_date,death_date,event,secret\n"
        "MRN42,DOE^JANE,2020-01-10,20210110,1,x\n"
        ",NOBODY,2020-01-01,,0,y\n"
    )
    summary = deidentify_table(
        table,
        tmp_path / "out.csv",
        Pseudonymizer(key),
        id_col="mrn",
        date_cols=["study_date", "death_date"],
        drop_cols=["secret"],
    )
    lines = (tmp_path / "out.csv").read_text().splitlines()
    assert lines[0] == "mrn,study_date,death_date,event"
    mrn, study_date, death_date, _event = lines[1].split(",")
    assert mrn == image.patient_id == image.dataset.PatientID
    assert study_date.replace("-", "") == image.dataset.StudyDate
    shifted_death = dt.datetime.strptime(death_date, "%Y%m%d").date()
    assert (shifted_death - dt.date.fromisoformat(study_date)).days == 366  # interval kept
    assert summary["rows"] == 1 and summary["dropped_rows"] == 1
    assert summary["dropped_columns"] == ["patient_name", "secret"]
    assert "DOE" not in (tmp_path / "out.csv").read_text()


def test_shift_date_text_formats():
    assert shift_date_text("2020-03-01T10:00", -1) == "2020-02-29T10:00"
    assert shift_date_text("20200301", 1) == "20200302"
    assert shift_date_text("01/03/2020", 1) is None


def test_cli_keygen_deid_table_and_errors(tmp_path):
    runner = CliRunner()
    key = tmp_path / "key"
    assert runner.invoke(app, ["keygen", str(key)]).exit_code == 0
    assert oct(os.stat(key).st_mode & 0o777) == "0o600"
    (tmp_path / "in.csv").write_text("id,date\nA1,2020-01-01\n")
    args = ["deid-table", str(tmp_path / "in.csv"), str(tmp_path / "out.csv"), "--id-col", "id", "--date-cols", "date"]
    assert runner.invoke(app, [*args, "--key-file", str(key)]).exit_code == 0
    bad = runner.invoke(app, [*args[:5], "--date-cols", "nope", "--key-file", str(key)])
    assert bad.exit_code == 2 and "not in the table" in bad.output
    missing = runner.invoke(app, args, env={"MEDFLOW_DEID_KEY": ""})
    assert missing.exit_code == 2 and "keygen" in missing.output
    (tmp_path / "dicom").mkdir()
    shutil.copy(get_testdata_file("CT_small.dcm"), tmp_path / "dicom" / "x")
    write_new_key(tmp_path / "k2")
    result = runner.invoke(
        app,
        [
            "deid",
            str(tmp_path / "dicom"),
            str(tmp_path / "o"),
            "--key-file",
            str(tmp_path / "k2"),
            "--clean-pixels",
            "off",
        ],
    )
    assert result.exit_code == 0, result.output
    assert len(list((tmp_path / "o").rglob("*.dcm"))) == 1
