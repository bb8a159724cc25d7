"""The Prefect flow ``train`` on a real Prefect server: runs, returns PHI-free ids, emits medflow.model.trained."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tasks.locations import LocationKind, Locations, register_location
from tasks.synth.views import save_labels, write_view_dataset
from tests.server_events import events

pytestmark = pytest.mark.slow


def test_train_flow_emits_model_trained(prefect_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.train import train

    state = tmp_path / "state"
    monkeypatch.setenv("MEDFLOW_STATE_DIR", str(state))
    labels = write_view_dataset(tmp_path / "ds", patients=9, seed=1, frames=12, size=32)
    save_labels(labels, tmp_path / "labels.csv")
    dataset = register_location(state, LocationKind.DATASET, tmp_path / "ds")
    options = {"target_col": "ef", "backbone": "cnn3d", "frames": 4, "size": 16, "epochs": 1, "num_workers": 0}
    summary = train(dataset, register_location(state, LocationKind.LABELS, tmp_path / "labels.csv"), "regression",
                    options)  # fmt: skip
    assert summary["run_dir"].startswith("run-") and summary["dataset"] == dataset  # names, never paths
    run_dir = Locations(state, {}).path(LocationKind.RUN, summary["run_dir"])
    assert (run_dir / "predictions.parquet").exists() and run_dir.name == summary["run_id"]
    assert run_dir.parent == (tmp_path / "ds" / "runs").resolve()
    for _ in range(50):  # events reach the server asynchronously
        trained = [e for e in events("medflow.model.trained") if e["payload"].get("run_id") == summary["run_id"]]
        if trained:
            break
        asyncio.run(asyncio.sleep(0.2))
    assert trained and trained[0]["payload"] == {"run_id": summary["run_id"], "run_dir": summary["run_dir"],
                                                 "dataset": dataset}  # fmt: skip
