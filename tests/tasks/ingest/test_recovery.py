"""Leftovers of killed runs, one run per dataset, special files under SOURCE, modality tags."""

from __future__ import annotations

import json
import os
import stat

import pytest

from tasks.atomic import TEMP_PREFIX
from tasks.deid.context import DeidContext
from tasks.deid.keys import DeidKey
from tasks.errors import ConfigError
from tasks.ingest.discover import modality_code
from tasks.ingest.folder import ingest_folder, prepare_run
from tasks.ingest.lock import dataset_lock
from tasks.ingest.options import IngestOptions
from tests.tasks.ingest.sources import copy_testdata


@pytest.fixture(scope="module")
def ctx():
    return DeidContext.create(DeidKey(b"k" * 32), clean_pixels="off")


def test_prepare_run_removes_leftovers_of_killed_runs(tmp_path):
    src, dataset = tmp_path / "src", tmp_path / "ds"
    copy_testdata(src, ["MR_small.dcm"])
    stale = dataset / ".work" / "killed-run"
    stale.mkdir(parents=True)
    (stale / "batch-00000.json").write_text(json.dumps({"paths": [str(src / "Doe^John.dcm")]}))
    (dataset / ".staging" / "half-written").mkdir(parents=True)
    (dataset / f"{TEMP_PREFIX}manifest").write_bytes(b"partial")

    planned = prepare_run(src, dataset, IngestOptions(), "new-run", workers=1)

    assert not stale.exists() and not list((dataset / ".staging").iterdir())
    assert not list(dataset.rglob(f"{TEMP_PREFIX}*"))
    work = dataset / ".work" / "new-run"
    assert [b.path.parent for b in planned] == [work]
    for folder in (work, work.parent):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(planned[0].path.stat().st_mode) == 0o600
    assert planned[0].modalities == ("MR",)


def test_second_concurrent_run_is_refused(tmp_path, ctx):
    src = tmp_path / "src"
    copy_testdata(src, ["MR_small.dcm"])
    with dataset_lock(tmp_path / "ds"), pytest.raises(ConfigError, match="another ingest is running"):
        ingest_folder(src, tmp_path / "ds", ctx, workers=1)
    assert ingest_folder(src, tmp_path / "ds", ctx, workers=1).stored == 1  # released after the block


def test_special_files_are_counted_and_quarantined_unreadable(tmp_path, ctx):
    src = tmp_path / "src"
    copy_testdata(src, ["MR_small.dcm"])
    os.mkfifo(src / "fifo.dcm")  # opening it would block forever
    os.symlink(src / "missing.dcm", src / "dangling.dcm")
    os.symlink(src / "loop-b.dcm", src / "loop-a.dcm")
    os.symlink(src / "loop-a.dcm", src / "loop-b.dcm")
    summary = ingest_folder(src, tmp_path / "ds", ctx, workers=1)
    assert summary.balanced and summary.discovered == 5
    assert summary.stored == 1 and summary.quarantine_reasons == {"unreadable": 4}
    assert not (tmp_path / "ds" / ".work").exists() or not list((tmp_path / "ds" / ".work").iterdir())


def test_modality_tags_never_carry_a_header_value():
    assert modality_code("US") == "US" and modality_code(" ct ") == "CT"
    assert modality_code("Doe^John") == "other" and modality_code(None) == "other"


def test_fifo_is_the_only_entry_that_blocks_a_reader(tmp_path):
    from tasks.discovery import blocks_on_open, discover

    os.mkfifo(tmp_path / "fifo.dcm")
    os.symlink(tmp_path / "fifo.dcm", tmp_path / "link-to-fifo.dcm")
    os.symlink(tmp_path / "missing.dcm", tmp_path / "dangling.dcm")
    (tmp_path / "file.dcm").write_bytes(b"x")
    found = {p.name: blocks_on_open(p) for p in discover(tmp_path)}
    assert found == {"fifo.dcm": True, "link-to-fifo.dcm": True, "dangling.dcm": False, "file.dcm": False}
