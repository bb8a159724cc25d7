"""One embedded MLflow store (SQLite under a temporary state directory) for the registry tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from tasks.synth.views import save_labels, write_view_dataset

TINY = dict(frames=4, size=16, epochs=1, batch_size=8, num_workers=0, test_clips=2, backbone="cnn3d")


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """MEDFLOW_STATE_DIR with tracking on; MLFLOW_TRACKING_URI unset so the embedded default is used."""
    mp = pytest.MonkeyPatch()
    state = tmp_path_factory.mktemp("state")
    mp.setenv("MEDFLOW_STATE_DIR", str(state))
    mp.setenv("MEDFLOW_MLFLOW", "true")
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    yield state
    mp.undo()


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """24 synthetic patients (views 24×32×32), labels with EF class; returns (dataset, labels.csv)."""
    root = tmp_path_factory.mktemp("cohort")
    labels = write_view_dataset(root, patients=24, seed=5, frames=24, size=32, fail_fraction=0.1)
    labels["ef_class"] = pd.cut(labels["ef"], [0, 45, 100], labels=["reduced", "normal"]).astype(str)
    path = root / "labels.csv"
    save_labels(labels, path)
    return root, path
