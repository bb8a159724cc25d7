"""Crash recovery: SIGKILL ``medflow ingest`` at random points, re-run it, get exactly the uninterrupted result.

The CLI runs in a subprocess (its own process group, so worker processes die with it). Each kill happens
after a random number of inputs were finished (read from the run's audit log), so it lands mid-run. The
final dataset must equal that of one uninterrupted run with the same key (``ingest_folder``, the plain
function the flow wraps, in this process): same arrays (dtype, shape,
bytes) and attributes (Zarr), same manifest rows and per-input outcomes (modulo run ids, timestamps and
timings); no temporaries or staging leftovers. The last kill lands after every input is finished, in the
manifest/QC step.
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tasks.atomic import TEMP_PREFIX
from tests.reliability.corpus import TEST_KEY, copy_real, replicate, write_key

MEDFLOW = str(Path(sys.executable).with_name("medflow"))


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def run_cli(
    args: list[str], env: dict[str, str], *, kill_after: int | None, progress: Path, log: Path, timeout: float = 300
) -> int:
    """Run ``medflow ARGS`` (console output into ``log``); with ``kill_after``, SIGKILL its process group once
    the progress log has grown by that many lines. Returns the exit status (negative for a signal)."""
    start_lines = _lines(progress)
    with log.open("ab") as out:
        proc = subprocess.Popen([MEDFLOW, *args], env=env, stdout=out, stderr=out, start_new_session=True)
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        if kill_after is not None and _lines(progress) - start_lines >= kill_after:
            os.killpg(proc.pid, signal.SIGKILL)
            return proc.wait()
        time.sleep(0.02)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        pytest.fail("pipeline did not finish in time")
    return proc.returncode


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MEDFLOW_")}
    env.setdefault("PREFECT_HOME", str(tmp_path / "prefect-home"))
    env["MEDFLOW_STATE_DIR"] = str(tmp_path / "state")  # where `medflow ingest` registers its location handles
    env["PYTHONWARNINGS"] = "ignore"
    return env


def _released(output: Path, log_name: str) -> set[tuple[str, str]]:
    """(source id, outcome) per input from the pipeline's own log, ignoring times and repeated lines."""
    rows = [json.loads(line) for line in (output / log_name).read_text().splitlines() if line.strip()]
    outcome = {"duplicate": "done", "skipped": "done", "written": "done", "stored": "done"}
    return {(r["source_id"], outcome.get(r["status"], r["status"]) + str(r.get("reason") or "")) for r in rows}


VOLATILE = frozenset({"ingest_run_id", "run_id", "time", "created", "timestamp", "wall_seconds"})


def _stable(value):
    """``value`` without run ids, timestamps and timings (keys ending in ``_s``/``_seconds``)."""
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if k not in VOLATILE and not k.endswith(("_s", "_seconds"))}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return value


def _dataset_state(dataset: Path) -> tuple[dict, list[dict], set]:
    """(node key -> (attrs, {array: (dtype, shape, sha256)}), manifest rows, outcomes) of an ingest dataset."""
    import hashlib

    import numpy as np
    import pandas as pd
    import zarr

    nodes = {}
    root = zarr.open_group(str(dataset / "store.zarr"), mode="r")
    for name, group in sorted(root.groups()):
        arrays = {}
        for key, array in sorted(group.arrays()):
            data = np.ascontiguousarray(array[...])
            arrays[key] = (str(data.dtype), data.shape, hashlib.sha256(data.tobytes()).hexdigest())
        nodes[name] = (json.dumps(_stable(dict(group.attrs)), sort_keys=True, default=str), arrays)
    manifest = pd.read_parquet(dataset / "manifest.parquet").drop(columns=["ingest_run_id"], errors="ignore")
    rows = sorted(
        (json.dumps(_stable(r), sort_keys=True, default=str) for r in manifest.to_dict("records")),
    )
    return nodes, rows, _released(dataset, "inputs.jsonl")


def _reference_run(source: Path, dataset: Path) -> None:
    """The uninterrupted run, in this process with the plain function the flow wraps (saves a CLI start)."""
    from tasks.deid.context import DeidContext
    from tasks.deid.keys import DeidKey
    from tasks.ingest.folder import ingest_folder

    ctx = DeidContext.create(DeidKey(bytes.fromhex(TEST_KEY)))
    assert ingest_folder(source, dataset, ctx, workers=2).balanced


@dataclass
class CrashRuns:
    reference: Path
    crashed: Path
    kills: int


@pytest.fixture(scope="module")
def crash_runs(tmp_path_factory: pytest.TempPathFactory, prefect_server: str) -> CrashRuns:
    """One uninterrupted ingest, and one killed at random points then re-run to completion (same key)."""
    tmp = tmp_path_factory.mktemp("crash")
    base = tmp / "base"
    copy_real(base, ("CT_small.dcm", "MR_small.dcm", "emri_small.dcm", "rtplan.dcm"))
    source = tmp / "source"
    replicate(base, source, copies=4)
    (source / "broken.dcm").write_bytes(b"not dicom")
    key = write_key(tmp / "deid.key")
    env = _env(tmp)
    env.update(PREFECT_API_URL=prefect_server, PREFECT_HOME=os.environ["PREFECT_HOME"])
    reference, crashed = tmp / "reference", tmp / "crashed"

    def ingest(dataset: Path, kill_after: int | None) -> int:
        args = ["ingest", str(source), "--dataset", str(dataset), "--key-file", str(key), "--workers", "2"]
        return run_cli(args, env, kill_after=kill_after, progress=dataset / "inputs.jsonl", log=log, timeout=400)

    log = tmp / "console.log"
    _reference_run(source, reference)
    total = sum(1 for p in source.iterdir())
    rng = random.Random(8)
    kills = 0
    for point in (rng.randint(1, total // 3), rng.randint(total // 3, total - 1), total):
        done = _lines(crashed / "inputs.jsonl")
        kills += ingest(crashed, max(1, point - done)) == -signal.SIGKILL
    assert ingest(crashed, None) == 0, log.read_text()[-3000:]
    return CrashRuns(reference, crashed, kills)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_ingest_survives_sigkill(crash_runs: CrashRuns) -> None:
    assert crash_runs.kills >= 2, "the kills must land mid-run"
    ref_nodes, ref_rows, ref_outcomes = _dataset_state(crash_runs.reference)
    nodes, rows, outcomes = _dataset_state(crash_runs.crashed)
    assert nodes.keys() == ref_nodes.keys()
    for name in ref_nodes:
        assert nodes[name] == ref_nodes[name], name
    assert rows == ref_rows
    assert outcomes == ref_outcomes
    assert not list(crash_runs.crashed.rglob(f"{TEMP_PREFIX}*"))
    assert not [p for p in (crash_runs.crashed / ".staging").rglob("*")]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_killed_runs_leave_no_work_files(crash_runs: CrashRuns) -> None:
    """Batch files of killed runs list source paths (PHI): the next run removes them."""
    assert not [p for p in (crash_runs.crashed / ".work").rglob("*") if p.is_file()]
