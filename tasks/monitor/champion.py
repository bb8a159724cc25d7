"""The drift of a dataset's new rows against the training rows of a task's champion.

New rows: instances of patients outside the champion's split (arrived after it was trained), as in ``predict``.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd

from models.table import MANIFEST
from tasks.errors import ConfigError
from tasks.monitor.drift import DriftTest, drift_tests
from tasks.predict.profile import with_intensity
from tasks.registry.store import champion_version, client
from tasks.registry.versions import version_config


def champion_drift(dataset: Path, state_dir: Path, model: str, alpha: float = 0.01) -> tuple[list[DriftTest], int]:
    """Drift tests and the number of new rows (a ConfigError when the model has no champion)."""
    c = client(state_dir)
    version = champion_version(c, model)
    if version is None:
        raise ConfigError(f"model {model} has no champion yet: promote a version first")
    with tempfile.TemporaryDirectory() as tmp:
        config = version_config(c, version, Path(tmp))
    split = {k: {str(p) for p in v} for k, v in config["split"].items()}
    manifest = pd.read_parquet(Path(dataset) / MANIFEST)
    kind = config["clip"]["kind"]
    manifest = manifest.assign(array_key=manifest["view_key" if kind == "video" else "zarr_key"])
    patients = manifest["patient_id"].astype(str)
    reference = manifest[patients.isin(split["train"])]
    new = manifest[~patients.isin(set().union(*split.values()))]
    sides = [with_intensity(dataset, f[f["array_key"].notna()], "array_key").reindex(f.index) for f in (reference, new)]
    sides = [s.assign(qc_status=f["qc_status"], modality=f["modality"]) if "qc_status" in f else s
             for s, f in zip(sides, (reference, new), strict=True)]  # fmt: skip
    return drift_tests(sides[0], sides[1], alpha), len(new)
