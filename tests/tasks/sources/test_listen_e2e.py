"""The listener end to end, with real components only.

- ``medflow serve`` runs a listener from the sources file; Orthanc pushes two studies to it (REST
  ``/modalities/<name>/store``); each study, once quiet, emits ``medflow.study.received`` and the automation runs
  ``ingest-study`` once for it, on a real Prefect server. The dataset then holds every instance exactly once,
  the staging area is empty, and what reached Prefect (run names, parameters) is the listener's name, the
  keyed study tokens and the deployment's settings: no UID, no name.
- ``medflow listen`` on its own is killed (SIGKILL) in the middle of an association; after a restart the sender
  sends what was not acknowledged (and one acknowledged instance again): every instance is ingested, once.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pydicom
import pytest
import yaml
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage, Verification

from tasks.deid.keys import load_key, write_new_key
from tasks.sources.inbox import JOURNAL_NAME, study_token
from tasks.sources.journal import Journal
from tests.tasks.sources.instances import ct_series, new_study, phi_values
from tests.tasks.sources.orthanc import Orthanc, free_port

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]
MEDFLOW = str(Path(sys.executable).parent / "medflow")
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


#: Not "push": deployments/prefect.yaml declares a listener of that name, and a test that deploys it shares the
#: session's server, so its automation would answer this test's events too.
PUSH = "push-e2e"


async def _study_runs() -> list:
    from prefect import get_client

    async with get_client() as client:
        flows = {f.id: f.name for f in await client.read_flows()}
        return [r for r in await client.read_flow_runs() if flows.get(r.flow_id) == "ingest-study"]


def _study_events(api_url: str) -> list[dict]:
    """Every ``medflow.study.received`` event the server holds (REST: POST /events/filter)."""
    import httpx

    body = {"filter": {"event": {"name": ["medflow.study.received"]}}, "limit": 50}
    return httpx.post(f"{api_url}/events/filter", json=body, timeout=30).json()["events"]


def _echo(port: int, calling: str) -> bool:
    ae = AE(ae_title=calling)
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", port, ae_title="MEDFLOW")
    if not assoc.is_established:
        return False
    ok = assoc.send_c_echo().Status == 0
    assoc.release()
    return ok


def _wait(condition, timeout_s: float, process: subprocess.Popen, log: Path, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert process.poll() is None, f"{what}: the process exited\n{log.read_text()[-4000:]}"
        assert time.monotonic() < deadline, f"{what}: timed out\n{log.read_text()[-4000:]}"
        time.sleep(1)


def _stop(process: subprocess.Popen) -> int:
    process.send_signal(signal.SIGINT)
    try:
        return process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()


def _env(tmp_path: Path, prefect_server: str) -> dict[str, str]:
    return {
        **os.environ,
        "PREFECT_API_URL": prefect_server,
        "PYTHONPATH": str(ROOT),
        "MEDFLOW_STATE_DIR": str(tmp_path / "state"),
    }


def test_pushed_studies_each_trigger_one_ingest(orthanc: Orthanc, prefect_server: str, tmp_path: Path) -> None:
    key, dataset, sources = tmp_path / "deid.key", tmp_path / "dataset", tmp_path / "sources.yaml"
    write_new_key(key)
    files = [
        *ct_series(tmp_path / "push", 3, patient="DOE^JANE"),
        new_study("MR_small.dcm", tmp_path / "push", "ROE^RICHARD"),
    ]
    studies = sorted({orthanc.upload(p) for p in files})
    assert len(studies) == 2
    port = free_port()
    orthanc.register("medflow-push", "MEDFLOW", port)
    listener = {"name": PUSH, "kind": "listener", "port": port, "allow_ae": [orthanc.aet], "quiet_seconds": 3}
    sources.write_text(yaml.safe_dump({"sources": [listener]}))
    log = tmp_path / "serve.log"
    since = time.time() - 1
    command = [MEDFLOW, "serve", "--dataset", str(dataset), "--sources-file", str(sources), "--key-file", str(key),
               "--workers", "1", "--gpus", "1", "--threshold", "1000000"]  # fmt: skip
    with log.open("w") as out:
        serve = subprocess.Popen(command, cwd=ROOT, env=_env(tmp_path, prefect_server), stdout=out, stderr=out)
    try:
        _wait(lambda: _echo(port, orthanc.aet), 120, serve, log, "listener up")
        time.sleep(3)  # the runner registers the deployment and its automation right after the listener starts
        pushed = orthanc.call("POST", "/modalities/medflow-push/store", {"Resources": studies, "Synchronous": True})
        assert pushed.get("FailedInstancesCount", 0) == 0 and pushed["InstancesCount"] == len(files)

        def finished() -> list:
            runs = [
                r
                for r in asyncio.run(_study_runs())
                if r.created and r.created.timestamp() >= since and r.parameters.get("listener") == PUSH
            ]
            return runs if len(runs) >= 2 and all(r.state_type and r.state_type.value in FINAL for r in runs) else []

        _wait(lambda: bool(finished()), 300, serve, log, "two ingest-study runs")
        time.sleep(5)  # a third run would show up now
        runs = [
            r
            for r in asyncio.run(_study_runs())
            if r.created and r.created.timestamp() >= since and r.parameters.get("listener") == PUSH
        ]
    finally:
        _stop(serve)
        for study in studies:  # the Orthanc is the session's: leave it as the other source tests expect it
            orthanc.call("DELETE", f"/studies/{study}")

    assert [r.state_type.value for r in runs] == ["COMPLETED"] * 2, log.read_text()[-4000:]
    secret = load_key(key).secret
    tokens = {study_token(secret, pydicom.dcmread(p).StudyInstanceUID) for p in files}
    assert {r.parameters["study"].removeprefix("medflow.study.") for r in runs} == tokens  # one run per study
    assert all(r.parameters["listener"] == PUSH for r in runs)
    assert not [v for r in runs for v in r.parameters.values() if "/" in str(v)]  # location names, never paths
    assert all(
        set(r.parameters) <= {"listener", "study", "dataset", "key_file", "workers", "dask_address"} for r in runs
    )
    events = [e for e in _study_events(prefect_server) if e["resource"].get("medflow.listener") == PUSH]
    assert {e["resource"]["prefect.resource.id"].removeprefix("medflow.study.") for e in events} == tokens
    assert all(set(e["payload"]) == {"listener", "study", "instances", "bytes", "modalities", "last_received"}
               for e in events)  # fmt: skip
    published = "\n".join(r.name + json.dumps(r.parameters) for r in runs) + json.dumps(events)
    assert not [v for v in phi_values(files) if v in published]

    manifest = pd.read_parquet(dataset / "manifest.parquet")
    assert sorted(manifest.modality) == ["CT", "MR"]
    assert sorted(manifest.n_source_instances) == [1, 3]  # every instance once (the 3 slices: one volume)
    assert not list((tmp_path / "state" / "staging" / PUSH).rglob("*.dcm"))


def _send(port: int, paths: list[Path], kill_after: int | None = None, pid: int | None = None) -> list[int]:
    """C-STORE ``paths`` on one association; with ``kill_after``, SIGKILL ``pid`` once that many were acknowledged.
    Returns the status of each instance that got an answer."""
    ae = AE(ae_title="MODALITY")
    ae.add_requested_context(CTImageStorage)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    assoc = ae.associate("127.0.0.1", port, ae_title="MEDFLOW")
    assert assoc.is_established
    statuses: list[int] = []
    for path in paths:
        if kill_after is not None and len(statuses) == kill_after:
            os.kill(pid, signal.SIGKILL)  # the association is open, the next instance on its way
        status = assoc.send_c_store(pydicom.dcmread(path))
        if not status:  # no answer: the listener is gone
            break
        statuses.append(int(status.Status))
    if assoc.is_established:
        assoc.release()
    return statuses


def test_a_killed_listener_loses_nothing_it_acknowledged(prefect_server: str, tmp_path: Path) -> None:
    key, dataset = tmp_path / "deid.key", tmp_path / "dataset"
    write_new_key(key)
    slices = ct_series(tmp_path / "series", 8, patient="DOE^JANE")
    port = free_port()
    command = [MEDFLOW, "listen", "--dataset", str(dataset), "--key-file", str(key), "--port", str(port),
               "--allow-ae", "MODALITY", "--quiet-seconds", "4", "--workers", "1", "--name", "modality",
               "--journal-mb", "8"]  # fmt: skip
    env = _env(tmp_path, prefect_server)

    first_log = tmp_path / "listen-1.log"
    with first_log.open("w") as out:
        first = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=out)
    _wait(lambda: _echo(port, "MODALITY"), 120, first, first_log, "listener up")
    acknowledged = _send(port, slices, kill_after=4, pid=first.pid)
    assert first.wait(timeout=30) == -signal.SIGKILL
    assert acknowledged == [0x0000] * 4
    staging = tmp_path / "state" / "staging" / "modality"
    journal = Journal(staging / JOURNAL_NAME, 8 << 20)  # the killed listener's lock went with it
    journaled = {r.digest for r in journal.recover()}
    journal.close()
    staged = {p.stem for p in staging.rglob("*.dcm")}
    assert len(staged | journaled) == 4  # exactly what was acknowledged, staged or still journaled
    assert not dataset.joinpath("manifest.parquet").exists()

    second_log = tmp_path / "listen-2.log"
    with second_log.open("w") as out:
        second = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=out)
    try:
        _wait(lambda: _echo(port, "MODALITY"), 120, second, second_log, "listener restarted")
        # the sender retries what got no answer, and one acknowledged instance again (its answer may have been lost)
        assert _send(port, slices[3:]) == [0x0000] * 5

        def complete() -> bool:
            path = dataset / "manifest.parquet"
            return path.exists() and pd.read_parquet(path).n_source_instances.sum() == 8

        _wait(complete, 240, second, second_log, "all eight slices ingested")
        _wait(
            lambda: not list((tmp_path / "state" / "staging" / "modality").rglob("*.dcm")),
            60, second, second_log, "staging emptied",
        )  # fmt: skip
    finally:
        assert _stop(second) == 0, second_log.read_text()[-3000:]
    (row,) = pd.read_parquet(dataset / "manifest.parquet").itertuples()
    assert (row.modality, row.frames, row.n_source_instances) == ("CT", 8, 8)  # each slice once, none lost
    logs = first_log.read_text() + second_log.read_text()
    assert not [v for v in phi_values(slices) if v in logs]
