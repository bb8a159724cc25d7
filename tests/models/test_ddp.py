"""A two-process (gloo) training run, started by torchrun from ``train_model``, gives one run directory with the
predictions and metrics of a one-process run with the same global batch. (That such a run is triggered through
``medflow serve`` and followed by one evaluation is tested in ``tests/deployments/test_e2e.py``.)"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from tasks.synth.views import save_labels, write_view_dataset

pytestmark = pytest.mark.slow

# 10 patients give 8 training instances: one step per epoch, a global batch of 8 either way
COMMON = {"target_col": "ef", "backbone": "cnn3d", "frames": 4, "size": 16, "epochs": 2, "num_workers": 0,
          "test_clips": 1, "augment": False, "accelerator": "cpu"}  # fmt: skip


def test_two_process_run_matches_a_one_process_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from models.training import TrainConfig, train_model

    monkeypatch.setenv("MEDFLOW_STATE_DIR", str(tmp_path / "state"))  # where the ranks' log goes
    dataset, labels = tmp_path / "ds", tmp_path / "labels.csv"
    save_labels(write_view_dataset(dataset, patients=10, seed=1, frames=4, size=16), labels)

    two = train_model(
        TrainConfig(str(dataset), str(labels), "regression", **{**COMMON, "devices": "2", "batch_size": 4})
    )
    config = yaml.safe_load((two.run_dir / "config.yaml").read_text())
    assert config["distributed"] == {"world_size": 2, "nodes": 1, "backend": "gloo"}
    assert "MEMBER: 2/2" in (tmp_path / "state" / "logs" / f"train-{two.run_id}.log").read_text()

    one = train_model(
        TrainConfig(str(dataset), str(labels), "regression", **{**COMMON, "devices": "1", "batch_size": 8})
    )
    assert sorted(p.name for p in (dataset / "runs").iterdir()) == sorted([two.run_id, one.run_id])
    assert yaml.safe_load((one.run_dir / "config.yaml").read_text())["split"] == config["split"]
    by_two = pd.read_parquet(two.run_dir / "predictions.parquet").set_index("instance_id")["prediction"]
    by_one = pd.read_parquet(one.run_dir / "predictions.parquet").set_index("instance_id")["prediction"]
    # same global batch; batch norm sees 4 clips per rank instead of 8 (SyncBatchNorm needs a GPU): close, not equal
    assert (by_two.loc[by_one.index] - by_one).abs().max() < 0.01 * by_one.abs().mean()
    assert two.metrics["training"]["mae"] == pytest.approx(one.metrics["training"]["mae"], rel=0.02)
