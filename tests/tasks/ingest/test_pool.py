"""The batch process pool shared by ``ingest_folder`` and the flow: forkserver workers, warnings brought back."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pandas as pd
import pytest

from tasks.deid.context import DeidContext
from tasks.deid.keys import DeidKey
from tasks.ingest.folder import ingest_folder
from tasks.ingest.pool import MAX_WARNINGS, batch_pool, collect_warnings, registered_pool
from tests.tasks.ingest.sources import copy_testdata, ct_series, overflowing_ct_series


def test_collect_warnings_keeps_this_threads_task_warnings():
    other = threading.Thread(target=lambda: logging.getLogger("tasks.elsewhere").warning("other thread"))
    with collect_warnings() as messages:
        logging.getLogger("tasks.normalize.volume").warning("volume: %d voxels outside int16 clipped", 7)
        logging.getLogger("tasks.normalize.volume").info("not a warning")
        logging.getLogger("prefect.other").warning("not a tasks logger")
        other.start()
        other.join()
    assert messages == ["tasks.normalize.volume: volume: 7 voxels outside int16 clipped"]


def test_collect_warnings_is_bounded():
    with collect_warnings() as messages:
        for i in range(MAX_WARNINGS + 5):
            logging.getLogger("tasks.x").warning("warning %d", i)
    assert len(messages) == MAX_WARNINGS + 1 and messages[-1] == "5 more warnings not shown"


def test_pool_is_forkserver_and_registered_only_while_open():
    with batch_pool(2, "run-x") as pool:
        assert pool is not None and registered_pool("run-x") is pool
        assert pool.start_method == "forkserver"
        assert pool.call(sum, [1, 2, 3]) == 6
    assert registered_pool("run-x") is None
    with batch_pool(0, "run-y") as none:
        assert none is None and registered_pool("run-y") is None


def _shapes(dataset: Path) -> pd.DataFrame:
    rows = pd.read_parquet(dataset / "manifest.parquet").sort_values("zarr_key")
    return rows[["zarr_key", "frames", "height", "width"]].reset_index(drop=True)


@pytest.mark.slow
def test_ingest_folder_in_the_pool_matches_one_process_and_relays_warnings(tmp_path, caplog):
    src = tmp_path / "src"
    ct_series(src / "ct", n=3)
    overflowing_ct_series(src / "ct-overflow")
    copy_testdata(src, ["MR_small.dcm", "OBXXXX1A_2frame.dcm", "rtplan.dcm"])
    ctx = DeidContext.create(DeidKey(b"k" * 32), clean_pixels="off")
    one = ingest_folder(src, tmp_path / "one", ctx, workers=1)
    with caplog.at_level(logging.WARNING, logger="tasks.ingest.folder"):
        two = ingest_folder(src, tmp_path / "two", ctx, workers=2)
    assert two.balanced and two.discovered == one.discovered == 9
    assert (two.stored, two.quarantined, two.arrays_written) == (one.stored, one.quarantined, one.arrays_written)
    assert two.batches >= 2
    pd.testing.assert_frame_equal(_shapes(tmp_path / "one"), _shapes(tmp_path / "two"))
    relayed = [r.getMessage() for r in caplog.records if r.name == "tasks.ingest.folder"]
    assert any("voxels outside int16 clipped" in m for m in relayed), relayed  # logged in a worker process
