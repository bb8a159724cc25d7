"""A registered model version back as a runnable model: its path-free config and best checkpoint from MLflow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from models.run import TrainedRun, load_run


def download_version(mlflow_client: Any, version: Any, dest: Path) -> Path:
    """``dest`` laid out as a run directory (config.yaml, checkpoints/best.ckpt) from the version's MLflow run."""
    dest.mkdir(parents=True, exist_ok=True)
    mlflow_client.download_artifacts(version.run_id, "config.yaml", str(dest))
    mlflow_client.download_artifacts(version.run_id, "checkpoints", str(dest))
    return dest


def load_version(mlflow_client: Any, version: Any, dest: Path) -> TrainedRun:
    """The version's model in eval mode on the CPU (weights-only checkpoint load, as every checkpoint here)."""
    return load_run(download_version(mlflow_client, version, dest))


def version_config(mlflow_client: Any, version: Any, dest: Path) -> dict[str, Any]:
    """The version's public config.yaml (split by pseudonymous patient id, objective, no paths)."""
    path = Path(mlflow_client.download_artifacts(version.run_id, "config.yaml", str(dest)))
    return yaml.safe_load(path.read_text())
