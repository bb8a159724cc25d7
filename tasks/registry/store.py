"""Where the registry lives, and the name of a task's registered model."""

from __future__ import annotations

import fcntl
import functools
import logging
import os
import re
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CHAMPION = "champion"
RECORD = "registry.json"  # in a run directory: the MLflow run id, model name and version of that run
_SAFE = re.compile(r"[^a-z0-9-]+")


def tracking_enabled(settings: Any) -> bool:
    """Off with ``MEDFLOW_MLFLOW=false`` (tests that do not need a store; sites without one)."""
    return bool(getattr(settings, "mlflow", True))


def tracking_uri(state_dir: Path) -> str:
    """``MLFLOW_TRACKING_URI`` when set, else ``sqlite:///STATE_DIR/mlflow/mlflow.db``."""
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    root = Path(state_dir).expanduser().resolve() / "mlflow"
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    return f"sqlite:///{root / 'mlflow.db'}"


def artifact_root(state_dir: Path) -> str | None:
    """Artifact location of new experiments in the embedded store (None: the server's default)."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return None
    return (Path(state_dir).expanduser().resolve() / "mlflow" / "artifacts").as_uri()


def client(state_dir: Path) -> Any:
    """An ``MlflowClient`` on the registry's store (the tracking and the model registry are the same store)."""
    from mlflow import MlflowClient

    uri = tracking_uri(state_dir)
    if uri.startswith("sqlite:///"):
        _initialised(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


@functools.cache
def _initialised(uri: str) -> None:
    """Create the embedded store's tables under a file lock, once per process: flows that an event starts
    together (``predict`` and ``drift`` on each dataset update) would otherwise both create them, and SQLite
    refuses the second (``table experiments already exists``)."""
    from mlflow import MlflowClient

    database = Path(uri.removeprefix("sqlite:///"))
    with (database.parent / ".init.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            c = MlflowClient(tracking_uri=uri, registry_uri=uri)
            c.search_experiments(max_results=1)  # the tracking store creates and migrates the schema
            c.search_registered_models(max_results=1)  # the registry store checks it
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def model_name(dataset: str, task: str, target: str | None) -> str:
    """``<dataset location>-<task>[-<target column>]``: a location-name shape (letters, digits, ``-``, ≤ 64)."""
    parts = [dataset, task] + ([target] if target else [])
    return _SAFE.sub("-", "-".join(parts).lower()).strip("-")[:64].strip("-")


def experiment_id(mlflow_client: Any, name: str, state_dir: Path) -> str:
    """The experiment named ``name`` (one per registered model), created when missing."""
    found = mlflow_client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    return mlflow_client.create_experiment(name, artifact_location=artifact_root(state_dir))


def ensure_registered_model(mlflow_client: Any, name: str, description: str = "") -> None:
    from mlflow.exceptions import MlflowException

    try:
        mlflow_client.get_registered_model(name)
    except MlflowException:
        mlflow_client.create_registered_model(name, description=description)


def champion_version(mlflow_client: Any, name: str) -> Any | None:
    """The model version aliased ``champion``, or None."""
    from mlflow.exceptions import MlflowException

    try:
        return mlflow_client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def models_of_dataset(mlflow_client: Any, dataset: str) -> list[str]:
    """Registered model names of a dataset's tasks (``<dataset>-…``), sorted."""
    found = mlflow_client.search_registered_models(filter_string=f"name LIKE '{dataset}-%'")
    return sorted(m.name for m in found)
