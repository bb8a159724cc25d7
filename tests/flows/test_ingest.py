"""End to end: the Prefect flow ``ingest`` on real pydicom-data files with a real Prefect server,
and the same flow on a real Dask scheduler + worker started on loopback."""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import zarr

from tasks.locations import LocationKind, register_location
from tests.tasks.ingest.sources import copy_testdata, ct_series, overflowing_ct_series, write_key

# one ultrasound cine (pixels cleaned by OCR under clean_pixels=auto), MR single and enhanced, NM, a non-image
REAL_FILES = ["MR_small.dcm", "emri_small.dcm", "examples_ybr_color.dcm", "JPEG-LL.dcm", "rtplan.dcm"]
SOURCE_PHI = ["CompressedSamples^MR1", "CompressedSamples^CT1", "4MR1", "1CT1"]  # PatientName/ID of the inputs


@pytest.fixture
def names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """``names(source, dataset, key)``: their handles in a state directory of this test (MEDFLOW_STATE_DIR), which
    the flow and its tasks resolve them with: flows take location names, never paths."""
    state = tmp_path / "state"
    monkeypatch.setenv("MEDFLOW_STATE_DIR", str(state))

    def register(source: Path, dataset: Path, key: Path) -> dict[str, str]:
        return {
            "source": register_location(state, LocationKind.SOURCE, source),
            "dataset": register_location(state, LocationKind.DATASET, dataset),
            "key_file": register_location(state, LocationKind.KEY, key),
        }

    return register


def _source(tmp_path: Path) -> Path:
    src = tmp_path / "incoming"
    ct_series(src / "ct", n=3)
    copy_testdata(src, REAL_FILES)
    (src / "notes.txt").write_text("not dicom")
    return src


def _read_ledger(dataset: Path, run_id: str) -> list[dict]:
    lines = (dataset / "inputs.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["run_id"] == run_id]


async def _logs_and_artifacts() -> str:
    from prefect import get_client

    async with get_client() as client:
        logs = await client.read_logs()
        artifacts = await client.read_artifacts()
        runs = await client.read_task_runs()
    texts = [log.message for log in logs]
    texts += [json.dumps(a.data, default=str) for a in artifacts]
    texts += [r.name for r in runs]
    return "\n".join(texts)


def _eventually(read, done, timeout: float = 60.0):
    """``read()`` again until ``done(result)`` or ``timeout`` seconds; the last result either way (the caller
    asserts on it). The server records task runs from events, which lag on a busy machine."""
    deadline = time.monotonic() + timeout
    while True:
        result = read()
        if done(result) or time.monotonic() > deadline:
            return result
        time.sleep(1)


async def _batch_names_and_tags() -> tuple[set[str], set[str], set[str]]:
    """Names and tags of the batch task runs, and the tags of the flow runs, on the test server."""
    from prefect import get_client

    async with get_client() as client:
        runs = await client.read_task_runs()
        flows = await client.read_flow_runs()
    batches = [r for r in runs if r.name.startswith("batch-")]
    return {r.name for r in batches}, {t for r in batches for t in r.tags}, {t for f in flows for t in f.tags}


@pytest.mark.slow
def test_ingest_flow_end_to_end(prefect_server, tmp_path, names):
    from flows.ingest import ingest

    src, dataset = _source(tmp_path), tmp_path / "dataset"
    places = names(src, dataset, write_key(tmp_path / "key"))
    first = ingest(**places, workers=1, clean_pixels="auto", run_id="run-1", audit=True)
    assert first["discovered"] == 9
    assert first["audit_findings"] == 0 and first["audit_files_scanned"] > 0  # the in-flow PHI audit ran
    assert (dataset / first["audit_report"]).is_file()
    audited = json.loads((dataset / first["audit_report"]).read_text())
    assert audited["prefect_database"] == "scanned" and audited["prefect_files_scanned"] >= 1  # the test server's
    assert first["stored"] + first["skipped"] + first["quarantined"] == first["discovered"]
    assert first["quarantine_reasons"] == {"not-dicom": 1, "unsupported": 1}
    ledger = _read_ledger(dataset, "run-1")
    assert len(ledger) == 9 and {r["status"] for r in ledger} == {"stored", "quarantined"}

    manifest = pd.read_parquet(dataset / "manifest.parquet")
    assert len(manifest) == first["manifest_rows"] == 5  # CT series → one volume
    ct = manifest[manifest.modality == "CT"].iloc[0]
    assert ct.kind == "volume" and ct.frames == 3 and ct.spacing_z == pytest.approx(2.0)
    video = manifest[manifest.kind == "video"].iloc[0]
    assert video.modality == "US" and video.view_fps == 50
    root = zarr.open_group(dataset / "store.zarr", mode="r")
    assert root[video.zarr_key.split("/")[0]].attrs["cleaning"]["pixels_cleaned"] is True
    view = root[video.view_key]
    assert view.shape[1:] == (112, 112) and view.dtype == "uint8"
    assert root[video.zarr_key].shape[0] == video.frames
    assert set(manifest.qc_status) <= {"pass", "fail"}
    assert (dataset / "qc" / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html").exists()
    assert "video" in root.attrs["intensity"]

    # no PHI in the dataset files, the Prefect logs, artifacts or task run names
    published = "\n".join(p.read_text(errors="ignore") for p in dataset.rglob("*.json*"))
    prefect_text = asyncio.run(_logs_and_artifacts())
    for phi in SOURCE_PHI:
        assert phi not in published and phi not in prefect_text
    assert "incoming" not in prefect_text and "MR_small" not in prefect_text
    assert "Ingest run-1" in prefect_text  # the summary artifact reached the server
    assert "failing_rows" in prefect_text  # so did the QC table artifact
    names, batch_tags, flow_tags = _eventually(  # task runs are recorded from events, late on a busy machine
        lambda: asyncio.run(_batch_names_and_tags()),
        lambda found: any(n.endswith("CT") for n in found[0]) and any("US" in n for n in found[0]),
    )
    assert {"modality:CT", "modality:MR", "modality:US"} <= flow_tags  # tagged once the batches are planned
    assert not batch_tags  # no per-task tag-concurrency leases
    assert all(re.fullmatch(r"batch-\d+-[A-Za-z]{2,12}(\+[A-Za-z]{2,12})*", n) for n in names), names  # codes only
    assert any(n.endswith("CT") for n in names) and any("US" in n for n in names)

    # a re-run writes nothing new and says so
    before = sorted(p.name for p in (dataset / "store.zarr").iterdir())
    second = ingest(**places, workers=1, clean_pixels="auto", run_id="run-2")
    assert second["arrays_written"] == 0 and second["new_rows"] == 0
    assert second["skipped"] == 7 and second["quarantined"] == 2
    assert sorted(p.name for p in (dataset / "store.zarr").iterdir()) == before


async def _latest_flow_run_task_logs(prefix: str) -> list[str]:
    """Log messages of the task runs named ``prefix...`` of the latest flow run (tests run one at a time)."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterTaskRunId
    from prefect.client.schemas.sorting import FlowRunSort

    async with get_client() as client:
        latest = (await client.read_flow_runs(sort=FlowRunSort.START_TIME_DESC, limit=1))[0]
        runs = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[latest.id])))
        ids = [r.id for r in runs if r.name.startswith(prefix)]
        logs = await client.read_logs(log_filter=LogFilter(task_run_id=LogFilterTaskRunId(any_=ids)))
    return [log.message for log in logs]


@pytest.mark.slow
def test_batches_in_the_process_pool_log_counts_and_worker_warnings_to_their_task(prefect_server, tmp_path, names):
    """workers=2: batch tasks on threads, the work in forkserver processes; each task's Prefect log has its
    counts and the (PHI-free) warnings its worker logged."""
    from prefect.logging.handlers import APILogWorker

    from flows.ingest import ingest

    src, dataset = tmp_path / "incoming", tmp_path / "dataset"
    ct_series(src / "ct", n=2)
    overflowing_ct_series(src / "ct-overflow", n=2)
    copy_testdata(src, ["MR_small.dcm", "SC_rgb.dcm"])
    places = names(src, dataset, write_key(tmp_path / "key"))
    summary = ingest(**places, workers=2, clean_pixels="off", run_id="pooled")
    assert summary["stored"] == 6 and summary["batches"] >= 2 and summary["audit_findings"] == 0
    APILogWorker.drain_all()  # logs reach the server in the background; task runs are recorded from events
    pattern = r"batch \d+: \d+ inputs = \d+ stored \+ \d+ skipped"
    messages = _eventually(
        lambda: asyncio.run(_latest_flow_run_task_logs("batch-")),
        lambda found: len([m for m in found if re.match(pattern, m)]) >= summary["batches"],
    )
    counted = [m for m in messages if re.match(pattern, m)]
    assert len(counted) == summary["batches"]
    assert any("voxels outside int16 clipped" in m for m in messages), messages


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_for_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port}")


@pytest.mark.slow
def test_ingest_on_a_real_dask_cluster(prefect_server, tmp_path, names):
    from distributed import Client

    from flows.ingest import ingest

    port = _free_port()
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}  # MEDFLOW_STATE_DIR shared
    scheduler = subprocess.Popen(
        [bin_dir / "dask", "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    worker = None
    try:
        _wait_for_port(port)
        address = f"tcp://127.0.0.1:{port}"
        worker = subprocess.Popen(
            [bin_dir / "dask", "worker", address, "--nthreads", "1", "--nworkers", "1", "--no-dashboard"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        with Client(address, timeout=60) as client:
            client.wait_for_workers(1, timeout=60)
        src = tmp_path / "incoming"
        ct_series(src / "ct", n=2)
        copy_testdata(src, ["MR_small.dcm", "SC_rgb.dcm"])
        dataset = tmp_path / "dataset"
        places = names(src, dataset, write_key(tmp_path / "key"))
        summary = ingest(**places, dask_address=address, clean_pixels="off")
        assert summary["discovered"] == 4 and summary["stored"] == 4 and summary["batches"] >= 1
        assert len(pd.read_parquet(dataset / "manifest.parquet")) == 3
    finally:
        for proc in (worker, scheduler):
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=30)


def test_cli_rejects_bad_options_with_a_remedy(tmp_path):
    from typer.testing import CliRunner

    from flows.cli import app

    runner = CliRunner()
    missing = runner.invoke(app, ["ingest", str(tmp_path / "nope"), "--dataset", str(tmp_path / "ds")])
    assert missing.exit_code == 2 and "SOURCE does not exist" in missing.output
    bad = runner.invoke(app, ["ingest", str(tmp_path), "--dataset", str(tmp_path / "ds"), "--clean-pixels", "maybe"])
    assert bad.exit_code == 2 and "auto, on or off" in bad.output
    engine = runner.invoke(app, ["ingest", str(tmp_path), "--dataset", str(tmp_path / "ds"), "--ocr-engine", "tess"])
    assert engine.exit_code == 2 and "easyocr" in engine.output and "rapidocr" in engine.output
    assert not (tmp_path / "ds").exists()


def test_ocr_options_reach_every_batch_context(tmp_path, monkeypatch):
    """--ocr-every-frame / --ocr-engine of `medflow ingest` become flow parameters that each batch task turns into
    its context's pixel options; unset, MEDFLOW_OCR_* decide."""
    from flows.ingest import build_context
    from tasks.errors import ConfigError

    key = str(write_key(tmp_path / "key"))
    ctx = build_context(key, "on", ocr_every_frame=True, ocr_engine="rapidocr")
    assert ctx.pixel_options.ocr_every_frame and ctx.pixel_options.ocr_engine == "rapidocr"
    assert not build_context(key, "on").pixel_options.ocr_every_frame
    monkeypatch.setenv("MEDFLOW_OCR_EVERY_FRAME", "1")
    assert build_context(key, "on").pixel_options.ocr_every_frame
    with pytest.raises(ConfigError):
        build_context(key, "on", ocr_engine="tesseract")


def _prefect_servers(home: Path) -> list[int]:
    """Pids of uvicorn processes (Prefect API servers) whose PREFECT_HOME is ``home``."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes()
        except OSError:
            continue
        if b"uvicorn" in cmdline and f"PREFECT_HOME={home}".encode() in environ.split(b"\0"):
            found.append(int(proc.name))
    return found


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_cli_without_api_url_starts_one_server_shared_by_workers(tmp_path):
    """No PREFECT_API_URL: the CLI starts one temporary server and, with 2 workers, every batch task reports
    to it; the pool's worker processes start no server of their own. Every batch task run lands in the one
    database.
    """
    import sqlite3

    src = tmp_path / "incoming"
    ct_series(src / "ct", n=2)
    copy_testdata(src, ["MR_small.dcm", "SC_rgb.dcm"])
    key = write_key(tmp_path / "key")
    home = tmp_path / "prefect-home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MEDFLOW_"))}
    env.update(PREFECT_HOME=str(home), MEDFLOW_STATE_DIR=str(tmp_path / "state"), PYTHONWARNINGS="ignore")
    medflow = str(Path(sys.executable).with_name("medflow"))
    args = [medflow, "ingest", str(src), "--dataset", str(tmp_path / "ds"), "--key-file", str(key)]
    log = tmp_path / "console.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([*args, "--workers", "2"], env=env, stdout=out, stderr=out)
    most = 0
    deadline = time.monotonic() + 380
    while proc.poll() is None and time.monotonic() < deadline:
        most = max(most, len(_prefect_servers(home)))
        time.sleep(0.2)
    if proc.poll() is None:
        proc.kill()
    assert proc.wait() == 0, log.read_text()[-3000:]
    assert most == 1, f"{most} Prefect servers ran for one ingest"
    assert "stored 4" in log.read_text()
    with sqlite3.connect(home / "prefect.db") as db:
        flows = db.execute("select count(*) from flow_run").fetchone()[0]
        batches = db.execute("select count(*) from task_run where name like 'batch-%'").fetchone()[0]
        states = {s for (s,) in db.execute("select state_type from task_run where name like 'batch-%'")}
    assert flows == 1 and batches >= 2 and states == {"COMPLETED"}


@pytest.mark.slow
def test_audit_finding_fails_the_run_without_quoting_the_value(prefect_server, tmp_path, names):
    """A value of an original anywhere in the dataset (here a stray note) fails the flow; counts only."""
    from flows.ingest import ingest
    from tasks.errors import MedflowError

    src, dataset = tmp_path / "incoming", tmp_path / "dataset"
    copy_testdata(src, ["MR_small.dcm"])
    dataset.mkdir()
    (dataset / "notes.txt").write_text("reviewed by CompressedSamples^MR1\n")  # the original's PatientName
    places = names(src, dataset, write_key(tmp_path / "key"))
    with pytest.raises(MedflowError, match=r"PHI audit: \d+ identifying values") as failed:
        ingest(**places, workers=1, clean_pixels="off", run_id="leaky", audit=True)
    assert "CompressedSamples" not in str(failed.value)
    summary = json.loads((dataset / "ingest-runs" / "leaky.json").read_text())
    assert summary["stored"] == 1 and summary["audit_findings"] >= 1


@pytest.mark.slow
def test_a_missing_source_fails_the_run_with_its_name_before_anything_is_written(prefect_server, tmp_path, names):
    """A source folder that went away (a deployment's handle, or a sources-file entry) is an error, not a
    successful run with one quarantined "file"; the message names the location, never its path."""
    from prefect import get_client
    from prefect.client.schemas.sorting import FlowRunSort

    from flows.ingest import ingest
    from tasks.errors import ConfigError

    src, dataset = tmp_path / "DOE_JOHN_123", tmp_path / "dataset"
    src.mkdir()
    places = names(src, dataset, write_key(tmp_path / "key"))
    src.rmdir()
    with pytest.raises(ConfigError, match=r"source source-[0-9a-f]{16}: its folder does not exist") as failed:
        ingest(**places, workers=1, clean_pixels="off", audit=False)
    assert "DOE" not in str(failed.value) and str(tmp_path) not in str(failed.value)
    assert not dataset.exists()  # failed before the dataset was created

    async def latest_state() -> str:
        async with get_client() as client:
            return (await client.read_flow_runs(sort=FlowRunSort.START_TIME_DESC, limit=1))[0].state_type.value

    assert asyncio.run(latest_state()) == "FAILED"  # a failed run in Prefect, not a successful one
