"""Two-process (gloo) training triggered through a real Prefect server: `medflow serve` answers a
``medflow.dataset.updated`` event, the train flow runs its ranks with torchrun, and the chain gives one run
directory, one ``medflow.model.trained`` event and one evaluation, with the metrics of a one-process run
with the same global batch."""

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
import pytest
import yaml

from tasks.locations import LocationKind, register_location
from tasks.synth.views import save_labels, write_view_dataset

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
FINAL = {"COMPLETED", "FAILED", "CRASHED", "CANCELLED"}
# 10 patients give 8 training instances: one step per epoch, a global batch of 8 either way
COMMON = {"target_col": "ef", "backbone": "cnn3d", "frames": 4, "size": 16, "epochs": 2, "num_workers": 0,
          "test_clips": 1, "augment": False, "accelerator": "cpu"}  # fmt: skip


async def _runs(names: set[str], since: float) -> list[tuple[str, object]]:
    from prefect import get_client

    async with get_client() as client:
        flows = {f.id: f.name for f in await client.read_flows()}
        runs = await client.read_flow_runs()
    return [(flows.get(r.flow_id, ""), r) for r in runs
            if flows.get(r.flow_id) in names and r.created and r.created.timestamp() >= since]  # fmt: skip


async def _trained_events(run_id: str) -> list[dict]:
    from prefect import get_client

    async with get_client() as client:
        event_filter = {"event": {"name": ["medflow.model.trained"]}, "resource": {"id": [f"medflow.run.{run_id}"]}}
        response = await client._client.post("/events/filter", json={"filter": event_filter, "limit": 50})
        response.raise_for_status()
    return [e for e in response.json()["events"] if e["payload"].get("run_id") == run_id]


def _deployments() -> set[str]:
    async def read() -> set[str]:
        from prefect import get_client

        async with get_client() as client:
            return {d.name for d in await client.read_deployments()}

    return asyncio.run(read())


def test_triggered_two_process_run_is_one_run_one_event_one_evaluation(prefect_server: str, tmp_path: Path) -> None:
    from prefect.events import emit_event

    from models.training import TrainConfig, train_model

    dataset, state = tmp_path / "ds", tmp_path / "state"
    save_labels(write_view_dataset(dataset, patients=10, seed=1, frames=4, size=16), tmp_path / "labels.csv")
    handle = register_location(state, LocationKind.DATASET, dataset)  # the handle `medflow serve` registers too
    options = {**COMMON, "devices": "2", "batch_size": 4}
    log = tmp_path / "serve.log"
    command = [str(Path(sys.executable).parent / "medflow"), "serve", "--dataset", str(dataset),
               "--labels", str(tmp_path / "labels.csv"), "--task", "regression", "--threshold", "1", "--gpus", "1",
               "--train-options", json.dumps(options), "--evaluate-options", '{"n_resamples": 20}']  # fmt: skip
    env = {**os.environ, "PREFECT_API_URL": prefect_server, "PYTHONPATH": str(ROOT), "MEDFLOW_STATE_DIR": str(state),
           "PREFECT_RUNNER_POLL_FREQUENCY": "1"}  # fmt: skip
    since = time.time() - 1
    with log.open("w") as out:
        serve = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not {"train", "evaluate"} <= _deployments():
            assert serve.poll() is None and time.monotonic() < deadline, log.read_text()[-4000:]
            time.sleep(1)
        time.sleep(2)  # the triggers are registered with the deployments
        emit_event(event="medflow.dataset.updated", resource={"prefect.resource.id": f"medflow.dataset.{handle}"},
                   payload={"dataset": handle, "new_rows": 13})  # fmt: skip
        deadline = time.monotonic() + 900  # a bound on a hang; a loaded 2-core machine needs minutes
        while True:
            runs = asyncio.run(_runs({"train", "evaluate"}, since))
            done = {name: r for name, r in runs if r.state_type and r.state_type.value in FINAL}
            if "evaluate" in done or any(r.state_type.value != "COMPLETED" for r in done.values()):
                break
            assert serve.poll() is None and time.monotonic() < deadline, log.read_text()[-4000:]
            time.sleep(2)
    finally:
        serve.send_signal(signal.SIGINT)
        try:
            serve.wait(timeout=30)
        except subprocess.TimeoutExpired:
            serve.kill()
            serve.wait()

    assert all(r.state_type.value == "COMPLETED" for r in done.values()), log.read_text()[-4000:]
    (run_dir,) = (dataset / "runs").iterdir()  # one run directory
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["distributed"] == {"world_size": 2, "nodes": 1, "backend": "gloo"}
    assert len(asyncio.run(_trained_events(config["run_id"]))) == 1  # it triggered the evaluation, so it is stored
    time.sleep(3)  # a second evaluation, had one been triggered, would have started by now
    evaluations = [r for name, r in asyncio.run(_runs({"evaluate"}, since)) if name == "evaluate"]
    assert len(evaluations) == 1 and (run_dir / "report.html").exists()
    assert "model_check_clips" in json.loads((run_dir / "metrics.json").read_text())
    rank_log = state / "logs" / f"train-{config['run_id']}.log"
    assert "MEMBER: 2/2" in rank_log.read_text()  # both ranks ran, and their output stayed off Prefect

    single = train_model(TrainConfig(str(dataset), str(tmp_path / "labels.csv"), "regression",
                                     **{**COMMON, "devices": "1", "batch_size": 8}))  # fmt: skip
    assert yaml.safe_load((single.run_dir / "config.yaml").read_text())["split"] == config["split"]
    two = pd.read_parquet(run_dir / "predictions.parquet").set_index("instance_id")["prediction"]
    one = pd.read_parquet(single.run_dir / "predictions.parquet").set_index("instance_id")["prediction"]
    # same global batch; batch norm sees 4 clips per rank instead of 8 (SyncBatchNorm needs a GPU): close, not equal
    assert (two.loc[one.index] - one).abs().max() < 0.01 * one.abs().mean()
    metrics = json.loads((run_dir / "metrics.json").read_text())["training"]
    assert metrics["mae"] == pytest.approx(single.metrics["training"]["mae"], rel=0.02)
