"""The Prefect flow ``train`` on a real Prefect server: runs, returns PHI-free ids, emits medflow.model.trained."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tasks.synth.views import save_labels, write_view_dataset

pytestmark = pytest.mark.slow


async def _trained_events() -> list[dict]:
    from prefect import get_client

    async with get_client() as client:
        response = await client._client.post(
            "/events/filter", json={"filter": {"event": {"name": ["medflow.model.trained"]}}}
        )
        response.raise_for_status()
        return response.json()["events"]


def test_train_flow_emits_model_trained(prefect_server: str, tmp_path: Path) -> None:
    from flows.train import train

    labels = write_view_dataset(tmp_path / "ds", patients=9, seed=1, frames=12, size=32)
    save_labels(labels, tmp_path / "labels.csv")
    options = {"target_col": "ef", "backbone": "cnn3d", "frames": 4, "size": 16, "epochs": 1, "num_workers": 0}
    summary = train(str(tmp_path / "ds"), str(tmp_path / "labels.csv"), "regression", options)
    run_dir = Path(summary["run_dir"])
    assert (run_dir / "predictions.parquet").exists() and run_dir.name == summary["run_id"]
    for _ in range(50):  # events reach the server asynchronously
        events = [e for e in asyncio.run(_trained_events()) if e["payload"].get("run_id") == summary["run_id"]]
        if events:
            break
        asyncio.run(asyncio.sleep(0.2))
    assert events and events[0]["payload"]["run_dir"] == str(run_dir)
