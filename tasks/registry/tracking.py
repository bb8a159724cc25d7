"""A training run in MLflow: Lightning's ``MLFlowLogger`` during fit, then artifacts and a model version.

``start_tracking`` is called once by ``models.training.train_model`` before the Trainer is built, and
``Tracking.finish`` once after ``metrics.json`` is written; ``record_evaluation`` by ``evaluate_run``.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from tasks.atomic import atomic_write_bytes
from tasks.registry.store import RECORD, client, ensure_registered_model, experiment_id, model_name, tracking_uri

log = logging.getLogger(__name__)

#: MLflow's automatic context tags would record the launching script's path and the OS user name: replaced.
CONTEXT_TAGS = {"mlflow.source.name": "medflow-train", "mlflow.source.type": "LOCAL", "mlflow.user": "medflow"}
#: TrainConfig fields that hold paths: never logged (the dataset is logged by its location name).
PATH_FIELDS = ("dataset", "labels", "weights", "resume")


@dataclass
class Tracking:
    """The live MLflow run of one training run."""

    logger: Any  # pytorch_lightning.loggers.MLFlowLogger
    model: str
    dataset: str
    state_dir: Path

    @property
    def run_id(self) -> str:
        return self.logger.run_id

    def finish(self, run_dir: Path, best: Path, metrics: dict[str, Any]) -> int:
        """Log config (paths replaced by location names), metrics, best checkpoint; register a model version."""
        c = client(self.state_dir)
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
        with tempfile.TemporaryDirectory() as tmp:
            safe = Path(tmp) / "config.yaml"
            safe.write_text(yaml.safe_dump(public_config(config, self.dataset), sort_keys=False))
            c.log_artifact(self.run_id, str(safe))
        c.log_artifact(self.run_id, str(run_dir / "metrics.json"))
        with tempfile.TemporaryDirectory() as tmp:
            c.log_artifact(self.run_id, str(public_checkpoint(best, run_dir, Path(tmp) / best.name)), "checkpoints")
        for name, value in (metrics.get("training") or {}).items():
            if isinstance(value, int | float):
                c.log_metric(self.run_id, f"test_{name}", float(value))
        ensure_registered_model(c, self.model, f"medflow task {self.model}")
        source = f"{c.get_run(self.run_id).info.artifact_uri}/checkpoints"
        version = c.create_model_version(
            self.model, source, run_id=self.run_id,
            tags={"medflow.run_id": config["run_id"], "manifest_sha256": config["manifest_sha256"]},
        )  # fmt: skip
        c.set_terminated(self.run_id)
        record = {"mlflow_run_id": self.run_id, "model": self.model, "version": int(version.version),
                  "dataset": self.dataset}  # fmt: skip
        atomic_write_bytes(run_dir / RECORD, json.dumps(record, indent=2).encode())
        log.info("registered %s version %s", self.model, version.version)
        return int(version.version)


def public_config(config: dict[str, Any], dataset: str) -> dict[str, Any]:
    """``config.yaml`` without paths: the dataset by location name, path options dropped."""
    out = dict(config)
    out["dataset"] = dataset
    out["args"] = {k: (dataset if k == "dataset" else None if k in PATH_FIELDS else v)
                   for k, v in config.get("args", {}).items()}  # fmt: skip
    return out


def public_checkpoint(best: Path, run_dir: Path, out: Path) -> Path:
    """``best`` written to ``out`` without paths: Lightning's callback state records the checkpoint folder and
    files by absolute path (``best_model_path``, ``best_k_models``...); they become relative to the run directory,
    and any other absolute path an empty string. The weights are untouched."""
    import torch

    from models.checkpoints import load_checkpoint

    root = str(Path(run_dir).resolve())

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {strip(k): strip(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(strip(v) for v in value)
        if isinstance(value, str) and value.startswith("/"):
            return str(Path(value).relative_to(root)) if value.startswith(root + "/") else ""
        return value

    state = load_checkpoint(best)
    weights = {k: state.pop(k) for k in ("state_dict", "optimizer_states") if k in state}
    torch.save({**strip(state), **weights}, out)
    return out


def training_params(cfg: Any, dataset: str) -> dict[str, Any]:
    """TrainConfig as MLflow params: path options out, the dataset's location name in."""
    params = {k: v for k, v in asdict(cfg).items() if k not in PATH_FIELDS and v is not None}
    params["tabular"] = ",".join(cfg.tabular)
    params["dataset"] = dataset
    return params


def dataset_location(settings: Any, path: Path) -> str:
    """The dataset's configured location name when one points at ``path``, else its registered handle."""
    from tasks.locations import LocationKind, register_location

    resolved = Path(path).expanduser().resolve()
    for name, configured in dict(settings.locations).items():
        if Path(configured).expanduser().resolve() == resolved:
            return name
    return register_location(Path(settings.state_dir), LocationKind.DATASET, resolved)


def start_tracking(cfg: Any, run_id: str, manifest_sha256: str, settings: Any | None = None) -> Tracking | None:
    """An ``MLFlowLogger`` for this run (experiment = registered model name), or None when tracking is off."""
    from pytorch_lightning.loggers import MLFlowLogger

    from tasks.config import load_settings
    from tasks.registry.store import tracking_enabled

    settings = settings or load_settings()
    if not tracking_enabled(settings):
        return None
    state_dir = Path(settings.state_dir)
    dataset = dataset_location(settings, Path(cfg.dataset))
    target = cfg.target_col if cfg.task != "survival" else cfg.event_col
    name = model_name(dataset, cfg.task, target)
    experiment_id(client(state_dir), name, state_dir)  # created with the store's artifact root
    logger = MLFlowLogger(
        experiment_name=name, run_name=run_id, tracking_uri=tracking_uri(state_dir),
        tags={"medflow.run_id": run_id, "manifest_sha256": manifest_sha256, "task": cfg.task, "dataset": dataset,
              **CONTEXT_TAGS},
        log_model=False,
    )  # fmt: skip
    logger.log_hyperparams(training_params(cfg, dataset))
    return Tracking(logger, name, dataset, state_dir)


def read_record(run_dir: Path) -> dict[str, Any] | None:
    path = Path(run_dir) / RECORD
    return json.loads(path.read_text()) if path.is_file() else None


def record_evaluation(run_dir: Path, metrics: dict[str, Any], settings: Any | None = None) -> None:
    """Attach an evaluation to the run's MLflow run and model version (report, metrics, headline as tags)."""
    from tasks.config import load_settings

    record = read_record(run_dir)
    if record is None:
        return
    settings = settings or load_settings()
    c = client(Path(settings.state_dir))
    for name in ("metrics.json", "report.html"):
        if (Path(run_dir) / name).is_file():
            c.log_artifact(record["mlflow_run_id"], str(Path(run_dir) / name), "evaluation")
    for name, value in metrics.items():
        if "__" in name or isinstance(value, bool) or not isinstance(value, int | float):
            continue
        c.log_metric(record["mlflow_run_id"], f"eval_{name}", float(value))
        c.set_model_version_tag(record["model"], str(record["version"]), f"eval.{name}", f"{value:.6g}")
    ci = {k: v for k, v in metrics.items() if k.endswith("_ci") and "__" not in k and isinstance(v, list)}
    for name, (low, high) in ci.items():
        if low is not None and high is not None:
            c.set_model_version_tag(record["model"], str(record["version"]), f"eval.{name}", f"{low:.4g}..{high:.4g}")
