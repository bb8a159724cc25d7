"""The per-file time limit with an input that really hangs: a real RLE file whose pixel decoder blocks forever.

The limit is set to a few seconds; the stuck file's worker is killed and replaced, the file is quarantined as
``timeout``, and its batch (a CT series whose other slices still form a volume) and the other batches finish.
The runs happen in a subprocess (:mod:`tests.tasks.ingest.hanging`) so the blocking decoder plugin is
registered only there.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.uid import RLELossless, generate_uid

from tests.tasks.ingest.sources import copy_testdata

DRIVER = Path(__file__).with_name("hanging.py")
ROOT = Path(__file__).resolve().parents[3]
LIMIT_S = 3.0


def _source(folder: Path) -> Path:
    """A 4-slice CT series whose slice at the last position (file ``ct_1.dcm``, second in the batch) is RLE
    compressed, plus other inputs in batches of their own."""
    series = folder / "ct"
    series.mkdir(parents=True)
    uid = generate_uid()
    for position, name in enumerate(["ct_0", "ct_2", "ct_3", "ct_1"]):
        ds = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
        iop = np.asarray([float(v) for v in ds.ImageOrientationPatient])
        normal = np.cross(iop[:3], iop[3:])
        ds.ImagePositionPatient = [float(v) for v in np.asarray(ds.ImagePositionPatient, float) + position * 2 * normal]
        ds.SeriesInstanceUID = uid
        ds.SOPInstanceUID = generate_uid()
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        if name == "ct_1":
            ds.compress(RLELossless)  # decoded by the blocking plugin only
        ds.save_as(series / f"{name}.dcm")
    copy_testdata(folder, ["MR_small.dcm", "SC_rgb.dcm", "OBXXXX1A_2frame.dcm", "emri_small.dcm"])
    return folder


def _run(mode: str, source: Path, output: Path, **env: str) -> tuple[dict, float]:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, str(DRIVER), mode, str(source), str(output), str(LIMIT_S)],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "PYTHONWARNINGS": "ignore", **env},
        capture_output=True,
        text=True,
        timeout=240,  # without the limit the stuck decode never returns
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1]), time.monotonic() - started


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_ingest_kills_the_stuck_worker_quarantines_the_file_and_finishes_the_batch(tmp_path: Path) -> None:
    source, dataset = _source(tmp_path / "source"), tmp_path / "dataset"
    summary, seconds = _run("ingest", source, dataset)
    assert summary["discovered"] == 8 and summary["quarantined"] == 1
    assert summary["quarantine_reasons"] == {"timeout": 1}
    assert summary["stored"] == 7  # three slices of the series, the four other inputs
    assert seconds < 120  # the stuck decode never returns: only the limit ends it
    manifest = pd.read_parquet(dataset / "manifest.parquet")
    ct = manifest[manifest.modality == "CT"]
    assert len(ct) == 1 and int(ct.iloc[0].frames) == 3  # the batch went on: the volume holds the other slices
    assert len(manifest) == 5
    (record,) = _lines(dataset / "quarantine.jsonl")
    assert record["reason"] == "timeout" and record["step"] == "ingest" and "MEDFLOW_FILE_TIMEOUT_S" in record["detail"]
    audit = _lines(dataset / "inputs.jsonl")
    assert len(audit) == 8 and len({r["source_id"] for r in audit}) == 8  # one line per input, none twice
    assert not list((dataset / ".staging").iterdir())


@pytest.mark.slow
def test_the_ingest_flow_quarantines_the_stuck_file_and_its_audit_passes(tmp_path: Path, prefect_server: str) -> None:
    """The flow's batch tasks use the same pool; its PHI audit of the run (a ``timeout`` line included) is clean."""
    import os

    source, dataset = _source(tmp_path / "source"), tmp_path / "dataset"
    env = {"PREFECT_API_URL": prefect_server, "PREFECT_HOME": os.environ["PREFECT_HOME"]}
    summary, _ = _run("flow", source, dataset, **env)
    assert summary["quarantine_reasons"] == {"timeout": 1} and summary["stored"] == 7
    assert summary["audit_findings"] == 0


def test_deid_kills_the_stuck_worker_and_quarantines_the_file(tmp_path: Path) -> None:
    """``medflow deid`` decodes pixels to clean burned-in text: an RLE secondary capture (cleaned under "auto")
    gets stuck there; objects without pixels (CT and MR now get a text check, which loads the detector and would
    need more than the test's short time limit) are copied."""
    source, output = tmp_path / "source", tmp_path / "output"
    copy_testdata(source, ["SC_rgb_rle.dcm", "waveform_ecg.dcm", "reportsi.dcm", "rtplan.dcm", "test-SR.dcm"])
    summary, _ = _run("deid", source, output)
    assert summary["files"] == 5 and summary["reasons"] == {"timeout": 1}
    assert summary["written"] == 4 and summary["quarantined"] == 1
    assert len(list(output.rglob("*.dcm"))) == 4
    rows = _lines(output / "deid-inputs.jsonl")
    assert len(rows) == 5 and sum(r["reason"] == "timeout" for r in rows) == 1
    (record,) = _lines(output / "quarantine.jsonl")
    assert record["reason"] == "timeout" and "SC_rgb" not in json.dumps(record)


@pytest.mark.timeout(120)
def test_pool_survives_a_killed_worker_and_runs_later_calls() -> None:
    """The pool itself: an item past the limit is stopped, later items and later calls run on a new worker."""
    from tasks.workers import WorkerPool

    with WorkerPool(1, item_timeout_s=1.0) as pool:
        run = pool.run_items(_sleepy, [0.0, 60.0, 0.0, 0.0])
        assert run.timed_out == [1] and sorted(run.records) == [0, 2, 3] and pool.killed == 1
        assert pool.call(sum, [1, 2, 3]) == 6
        assert pool.run_items(_sleepy, [0.0]).records == {0: 0.0}


def _sleepy(items: list[float], *, progress) -> None:
    for index, seconds in enumerate(items):
        progress.start(index)
        time.sleep(seconds)
        progress.done(index, seconds)
