"""A real training run tracked in a real (embedded SQLite) MLflow store, then its evaluation attached."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from models.training import TrainConfig, train_model
from tasks.evaluate.options import EvaluationOptions
from tasks.evaluate.run import evaluate_run
from tasks.registry.store import client, model_name
from tasks.registry.tracking import read_record
from tests.tasks.registry.conftest import TINY


def test_a_training_run_is_a_model_version_with_its_evaluation(state_dir: Path, cohort: tuple[Path, Path]) -> None:
    dataset, labels = cohort
    result = train_model(TrainConfig(str(dataset), str(labels), "classification", target_col="ef_class", **TINY))
    assert (state_dir / "mlflow" / "mlflow.db").is_file()  # the embedded default store
    record = read_record(result.run_dir)
    assert record is not None and record["model"] == model_name(record["dataset"], "classification", "ef_class")
    assert record["dataset"].startswith("dataset-")  # a location handle, not the folder's name

    c = client(state_dir)
    run = c.get_run(record["mlflow_run_id"])
    config = yaml.safe_load((result.run_dir / "config.yaml").read_text())
    assert run.data.tags["manifest_sha256"] == config["manifest_sha256"]
    assert run.data.tags["medflow.run_id"] == result.run_id and run.info.run_name == result.run_id
    assert run.data.params["backbone"] == "cnn3d" and run.data.params["dataset"] == record["dataset"]
    logged = " ".join([*run.data.params.values(), *run.data.tags.values()])
    assert str(dataset) not in logged and str(labels) not in logged and "/" not in run.data.params["dataset"]
    assert {"train_loss", "val_loss"} <= set(run.data.metrics)
    assert c.get_metric_history(run.info.run_id, "val_loss")  # per epoch, with steps

    artifacts = {a.path for a in c.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "metrics.json", "checkpoints"} <= artifacts
    assert [a.path for a in c.list_artifacts(run.info.run_id, "checkpoints")] == ["checkpoints/best.ckpt"]
    local = Path(c.download_artifacts(run.info.run_id, "config.yaml", str(state_dir / "dl")))
    assert str(dataset) not in local.read_text() and str(labels) not in local.read_text()

    version = c.get_model_version(record["model"], str(record["version"]))
    assert version.run_id == run.info.run_id and version.tags["medflow.run_id"] == result.run_id

    metrics = evaluate_run(result.run_dir, EvaluationOptions(n_resamples=50, model_checks=False))
    version = c.get_model_version(record["model"], str(record["version"]))
    assert float(version.tags["eval.auroc"]) == pytest.approx(metrics["auroc"], rel=1e-5)
    assert version.tags["eval.auroc_ci"].count("..") == 1
    assert {"evaluation/report.html", "evaluation/metrics.json"} <= {
        a.path for a in c.list_artifacts(run.info.run_id, "evaluation")
    }
    assert json.loads((result.run_dir / "registry.json").read_text())["version"] == 1
