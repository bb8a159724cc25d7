"""A tiny dataset on disk that follows the "Dataset on disk" contract (store.zarr views + manifest.parquet)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tasks.synth.views import save_labels, write_view_dataset


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """18 patients, views uint8 (24, 32, 32), one in ten QC-failed; returns (dataset, labels.csv)."""
    root = tmp_path_factory.mktemp("tiny-dataset")
    labels = write_view_dataset(root, patients=18, seed=3, frames=24, size=32, fail_fraction=0.1)
    labels["ef_class"] = pd.cut(labels["ef"], [0, 40, 100], labels=["reduced", "normal"]).astype(str)
    path = root / "labels.csv"
    save_labels(labels, path)
    return root, path
