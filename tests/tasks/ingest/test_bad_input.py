"""Bad SOURCE, unreadable folders and files, unwritable outputs: one clear error or a quarantine line each,
never silence, never a value in the message.

Permission bits do not bind root, so as root the runs go through ``setpriv`` without CAP_DAC_OVERRIDE and
CAP_DAC_READ_SEARCH: root is then held to the owner bits like anyone (files and folders here are its own).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tasks.deid.context import DeidContext
from tasks.deid.folder import deidentify_folder
from tasks.deid.keys import DeidKey
from tasks.errors import ConfigError, StorageError
from tasks.ingest.folder import ingest_folder
from tests.tasks.ingest.sources import copy_testdata

DRIVER = Path(__file__).with_name("plain.py")
ROOT = Path(__file__).resolve().parents[3]
PHI_NAME = "DOE_JOHN_4471"  # a folder named after a patient, as research exports often are


def _unprivileged() -> list[str]:
    if os.geteuid() != 0:
        return []
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is needed to hold root to permission bits")
    return ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]


def _run(mode: str, source: Path, output: Path) -> dict:
    done = subprocess.run(
        [*_unprivileged(), sys.executable, str(DRIVER), mode, str(source), str(output)],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "PYTHONWARNINGS": "ignore"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert PHI_NAME not in done.stdout + done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture
def locked(tmp_path: Path) -> Iterator[list[Path]]:
    """Paths to chmod 000 for the test, restored after it (so pytest can clean up)."""
    paths: list[Path] = []
    yield paths
    for path in paths:
        path.chmod(0o755)


def _lock(locked: list[Path], path: Path, mode: int = 0) -> None:
    path.chmod(mode)
    locked.append(path)


def _ctx() -> DeidContext:
    return DeidContext.create(DeidKey(b"k" * 32), clean_pixels="off")


def test_missing_source_fails_with_a_clear_message_and_writes_nothing(tmp_path: Path) -> None:
    missing = tmp_path / PHI_NAME
    with pytest.raises(ConfigError, match="SOURCE does not exist") as failed:
        ingest_folder(missing, tmp_path / "dataset", _ctx(), workers=0)
    assert PHI_NAME not in str(failed.value)
    assert not (tmp_path / "dataset" / "inputs.jsonl").exists() and not (tmp_path / "dataset" / "store.zarr").exists()
    with pytest.raises(ConfigError, match="SOURCE does not exist"):
        deidentify_folder(missing, tmp_path / "out", _ctx(), workers=0, progress=False)
    assert not (tmp_path / "out").exists()


def test_unreadable_source_fails_with_a_clear_message(tmp_path: Path, locked: list[Path]) -> None:
    source = tmp_path / PHI_NAME
    copy_testdata(source, ["MR_small.dcm"])
    _lock(locked, source)
    for mode, output in (("ingest", tmp_path / "dataset"), ("deid", tmp_path / "out")):
        result = _run(mode, source, output)
        assert result["type"] == "ConfigError" and "SOURCE cannot be read (permission denied)" in result["error"]
        assert not list(output.rglob("*.jsonl")) if output.exists() else True


def test_unreadable_folders_and_files_are_quarantined_and_counted_by_the_audit(
    tmp_path: Path, locked: list[Path]
) -> None:
    source = tmp_path / "source"
    copy_testdata(source, ["MR_small.dcm", "CT_small.dcm"])
    copy_testdata(source / PHI_NAME, ["emri_small.dcm"])
    (source / "closed.dcm").write_bytes((source / "MR_small.dcm").read_bytes())
    _lock(locked, source / PHI_NAME)
    _lock(locked, source / "closed.dcm")
    summary = _run("ingest", source, tmp_path / "dataset")
    assert summary["discovered"] == 4 and summary["stored"] == 2  # the folder is one input: its content is unknown
    assert summary["quarantine_reasons"] == {"unreadable": 2}
    lines = [json.loads(x) for x in (tmp_path / "dataset" / "quarantine.jsonl").read_text().splitlines()]
    assert {r["reason"] for r in lines} == {"unreadable"} and len(lines) == 2
    assert PHI_NAME not in (tmp_path / "dataset" / "quarantine.jsonl").read_text()

    report = _run("audit", source, tmp_path / "dataset")
    assert report["originals_unreadable"] == 2 and report["originals_read"] == 2
    assert report["ok"], report["findings"]

    deid = _run("deid", source, tmp_path / "out")
    assert deid["files"] == 4 and deid["written"] == 2 and deid["reasons"] == {"unreadable": 2}


def test_a_dataset_folder_the_audit_cannot_list_is_a_finding(tmp_path: Path, locked: list[Path]) -> None:
    source, dataset = tmp_path / "source", tmp_path / "dataset"
    copy_testdata(source, ["MR_small.dcm"])
    (dataset / "runs" / "hidden").mkdir(parents=True)
    (dataset / "runs" / "hidden" / "notes.txt").write_text("anything")
    _lock(locked, dataset / "runs" / "hidden")
    report = _run("audit", source, dataset)
    assert not report["ok"]
    assert [(f["path"], f["attributes"]) for f in report["findings"]] == [
        ("runs/hidden", ["cannot be listed: cannot be audited"])
    ]


def test_unwritable_dataset_or_output_is_one_clear_error_and_nothing_is_written(
    tmp_path: Path, locked: list[Path]
) -> None:
    source = tmp_path / "source"
    copy_testdata(source, ["MR_small.dcm"])
    for mode in ("ingest", "deid"):
        target = tmp_path / f"{mode}-{PHI_NAME}"
        target.mkdir()
        _lock(locked, target, 0o500)
        result = _run(mode, source, target)
        name = "DATASET" if mode == "ingest" else "OUTPUT"
        assert result["type"] == "StorageError" and f"{name} is not writable (Permission denied)" in result["error"]
        assert not list(target.iterdir())


def test_a_log_that_cannot_be_appended_stops_the_run_with_one_clear_error(tmp_path: Path) -> None:
    """inputs.jsonl that cannot take a line (here a folder in its place): the run stops rather than lose track of
    an input; the originals are untouched and a re-run, once fixed, completes."""
    source, dataset = tmp_path / "source", tmp_path / "dataset"
    copy_testdata(source, ["MR_small.dcm", "CT_small.dcm"])
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in source.iterdir()}
    (dataset / "inputs.jsonl").mkdir(parents=True)
    with pytest.raises(StorageError, match=r"cannot append to inputs.jsonl \(Is a directory\)") as failed:
        ingest_folder(source, dataset, _ctx(), workers=1)
    assert str(tmp_path) not in str(failed.value)
    assert {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in source.iterdir()} == before
    (dataset / "inputs.jsonl").rmdir()
    summary = ingest_folder(source, dataset, _ctx(), workers=1)
    assert summary.balanced and summary.stored + summary.skipped == 2
