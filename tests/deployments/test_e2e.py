"""End to end with a real Prefect server: `medflow serve` serves every deployment; an ingest's
``medflow.dataset.updated`` event starts training on two (gloo) processes, started by torchrun from the train
flow, tracked in MLflow, whose one ``medflow.model.trained`` event starts one evaluation and the promotion of
this first version to champion; no flow or task run name, parameter, log
line or artifact carries a planted PHI value. (``tests/models/test_ddp.py`` compares such a run with a
one-process run.)"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pydicom
import pytest
import yaml

from tasks.deid.keys import load_key, write_new_key
from tasks.deid.pseudonyms import Pseudonymizer
from tasks.deid.table import deidentify_table
from tasks.locations import LocationKind, Locations
from tasks.registry.store import champion_version, client
from tasks.synth.cohort import make_cohort
from tests.server_events import events

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
TINY_TRAINING = {
    "id_col": "mrn",
    "start_col": "study_date",
    "end_col": "followup_date",
    "event_col": "event",
    "backbone": "cnn3d",  # the video backbones are tested in tests/models
    "devices": "2",
    "epochs": 1,
    "frames": 4,
    "size": 32,
    "batch_size": 2,
    "num_workers": 0,
    "test_clips": 1,
    "accelerator": "cpu",
}
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}


def _cohort(tmp_path: Path) -> tuple[Path, Path, Path, set[str]]:
    """Synthetic echo cohort (burned-in and header PHI), its key, de-identified labels; planted PHI values."""
    make_cohort(tmp_path / "cohort", patients=4, seed=1)
    key = tmp_path / "deid.key"
    write_new_key(key)
    labels = tmp_path / "labels.csv"
    deidentify_table(
        tmp_path / "cohort" / "outcomes.csv",
        labels,
        Pseudonymizer(load_key(key)),
        id_col="mrn",
        date_cols=["study_date", "followup_date"],
        keep=["event", "ef", "sex", "group"],
        age_cols=["age"],
    )
    phi: set[str] = set()
    for path in (tmp_path / "cohort" / "dicom").rglob("*.dcm"):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        phi |= {str(ds.PatientName), str(ds.PatientID), ds.StudyInstanceUID, ds.SOPInstanceUID}
        phi |= {part for part in str(ds.PatientName).split("^") if len(part) > 3}
    phi.discard("")
    return tmp_path / "cohort" / "dicom", key, labels, phi


async def _flow_runs() -> list[tuple[str, object]]:
    """(flow name, flow run) for every flow run on the server."""
    from prefect import get_client

    async with get_client() as client:
        flows = {f.id: f.name for f in await client.read_flows()}
        return [(flows.get(r.flow_id, ""), r) for r in await client.read_flow_runs()]


async def _published() -> tuple[list, list, list]:
    from prefect import get_client

    async with get_client() as client:
        return await client.read_task_runs(), await client.read_logs(), await client.read_artifacts()


def _wait_for(flow_name: str, since: float, timeout_s: float, serve: subprocess.Popen, log: Path):
    """The first finished run of ``flow_name`` created after ``since``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for name, run in asyncio.run(_flow_runs()):
            created = run.created.timestamp() if run.created else 0
            if name == flow_name and created >= since and run.state_type and run.state_type.value in FINAL:
                return run
        assert serve.poll() is None, f"medflow serve exited:\n{log.read_text()[-4000:]}"
        time.sleep(2)
    raise AssertionError(f"no finished {flow_name} flow run within {timeout_s} s:\n{log.read_text()[-4000:]}")


def _deployment_names() -> set[str]:
    async def read() -> set[str]:
        from prefect import get_client

        async with get_client() as client:
            return {d.name for d in await client.read_deployments()}

    return asyncio.run(read())


def test_ingest_event_trains_and_evaluation_follows_without_phi(prefect_server: str, tmp_path: Path) -> None:
    from prefect.deployments import run_deployment

    dicom, key, labels, phi = _cohort(tmp_path)
    dataset = tmp_path / "dataset"
    sources = tmp_path / "sources.yaml"
    sources.write_text(yaml.safe_dump({"sources": [{"name": "inbox", "kind": "folder", "path": str(dicom)}]}))
    log = tmp_path / "serve.log"
    since = time.time() - 1
    command = [
        str(Path(sys.executable).parent / "medflow"), "serve",
        "--dataset", str(dataset), "--sources-file", str(sources), "--key-file", str(key),
        "--workers", "2", "--threshold", "1", "--gpus", "1",
        "--labels", str(labels), "--task", "survival", "--train-options", json.dumps(TINY_TRAINING),
        "--evaluate-options", json.dumps({"n_resamples": 50}),
    ]  # fmt: skip
    state = tmp_path / "state"
    env = {**os.environ, "PREFECT_API_URL": prefect_server, "PYTHONPATH": str(ROOT), "MEDFLOW_STATE_DIR": str(state),
           "MEDFLOW_MLFLOW": "true"}  # fmt: skip
    with log.open("w") as out:
        serve = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while not {"ingest-inbox", "train", "evaluate"} <= _deployment_names():
            assert serve.poll() is None and time.monotonic() < deadline, log.read_text()[-4000:]
            time.sleep(1)

        ingest_run = run_deployment("ingest-source/ingest-inbox", timeout=300, poll_interval=2)
        assert ingest_run.state.is_completed(), log.read_text()[-4000:]

        gate = _wait_for("train-on-new-data", since, 120, serve, log)
        assert gate.state_type.value == "COMPLETED", log.read_text()[-4000:]
        places = Locations(state, {})
        assert (
            gate.parameters["new_rows"] >= 4
            and places.path(LocationKind.DATASET, gate.parameters["dataset"]) == dataset
        )
        train = _wait_for("train", since, 300, serve, log)
        assert train.state_type.value == "COMPLETED", log.read_text()[-4000:]
        evaluate = _wait_for("evaluate", since, 300, serve, log)
        assert evaluate.state_type.value == "COMPLETED", log.read_text()[-4000:]
        promote = _wait_for("promote", since, 300, serve, log)  # the first version of the model: champion
        assert promote.state_type.value == "COMPLETED", log.read_text()[-4000:]
        (run_dir,) = (dataset / "runs").iterdir()  # one run directory for both ranks
        assert places.path(LocationKind.RUN, evaluate.parameters["run_dir"]) == run_dir.resolve()  # a handle
        assert evaluate.parameters["n_resamples"] == 50  # deployment defaults merged with the event's run_dir
        assert (run_dir / "report.html").exists()
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
        assert config["distributed"] == {"world_size": 2, "nodes": 1, "backend": "gloo"}
        trained = events("medflow.model.trained", f"medflow.run.{config['run_id']}")
        assert len([e for e in trained if e["payload"].get("run_id") == config["run_id"]]) == 1
        time.sleep(3)  # a second evaluation, had one been triggered, would have started by now
        evaluations = [r for name, r in asyncio.run(_flow_runs())
                       if name == "evaluate" and r.created and r.created.timestamp() >= since]  # fmt: skip
        assert len(evaluations) == 1
        rank_log = state / "logs" / f"train-{config['run_id']}.log"
        assert "MEMBER: 2/2" in rank_log.read_text()  # both ranks ran, and their output stayed off Prefect
        record = json.loads((run_dir / "registry.json").read_text())  # rank 0 alone opened the MLflow run
        champion = champion_version(client(state), record["model"])
        assert champion is not None and int(champion.version) == int(record["version"]) == 1
    finally:
        serve.send_signal(signal.SIGINT)
        try:
            serve.wait(timeout=30)
        except subprocess.TimeoutExpired:
            serve.kill()
            serve.wait()

    task_runs, logs, artifacts = asyncio.run(_published())
    mine = [r for _, r in asyncio.run(_flow_runs()) if r.created and r.created.timestamp() >= since]
    published = [r.name for r in mine] + [json.dumps(r.parameters, default=str) for r in mine]
    published += [t.name for t in task_runs if t.flow_run_id in {r.id for r in mine}]
    published += [entry.message for entry in logs if entry.flow_run_id in {r.id for r in mine}]
    published += [json.dumps(a.data, default=str) + str(a.description) for a in artifacts]
    text = "\n".join(published)
    leaked = sorted(value for value in phi if value in text)
    assert not leaked, f"{len(leaked)} planted PHI values reached Prefect"
    assert str(tmp_path) not in text  # nor any path: sources, dataset, labels, key and runs are location names
    assert "fetch-inbox" in text and "train-after-" in text  # meaningful names did reach the server
