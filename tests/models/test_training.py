"""End to end on a tiny contract-shaped dataset: train 1 epoch on the CPU, check the run directory contract,
reload it with ``load_run``, resume it, and drive the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from typer.testing import CliRunner

from flows.cli import app
from models.run import load_run
from models.training import TrainConfig, train_model

TINY = dict(frames=4, size=16, epochs=1, batch_size=8, num_workers=0, test_clips=2, backbone="cnn3d")


def _check_run_dir(run_dir: Path, dataset: Path) -> tuple[dict, pd.DataFrame]:
    assert (run_dir / "checkpoints" / "best.ckpt").exists() and (run_dir / "checkpoints" / "last.ckpt").exists()
    assert (run_dir / "logs" / "metrics.csv").exists() and any((run_dir / "logs" / "tb").iterdir())
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["manifest_sha256"] and config["args"]["seed"] == 0
    split = config["split"]
    assert not set(split["train"]) & set(split["test"]) and not set(split["val"]) & set(split["test"])
    predictions = pd.read_parquet(run_dir / "predictions.parquet")
    assert list(predictions.columns[:2]) == ["patient_id", "instance_id"]
    assert set(predictions["patient_id"]) <= set(split["test"])
    manifest = pd.read_parquet(dataset / "manifest.parquet")
    failed = set(manifest.loc[manifest["qc_status"] == "fail", "instance_id"])
    assert not failed & set(predictions["instance_id"])
    json.loads((run_dir / "metrics.json").read_text())
    return config, predictions


@pytest.mark.slow
def test_regression_run_reload_and_resume(tiny_dataset: tuple[Path, Path]) -> None:
    dataset, labels = tiny_dataset
    result = train_model(TrainConfig(str(dataset), str(labels), "regression", target_col="ef", **TINY))
    config, predictions = _check_run_dir(result.run_dir, dataset)
    assert {"label", "prediction", "sex", "age", "group"} <= set(predictions.columns)
    assert "r2" in result.metrics["training"]

    run = load_run(result.run_dir)
    ids, clips = run.test_clips(limit=3)
    assert run.task == "regression" and len(ids) == clips.shape[0] <= 3 and clips.dtype == torch.uint8
    with torch.no_grad():
        scores = run.score(run.model(run.prepare(clips)))
    assert scores.shape == (len(ids),) and not run.model.training
    by_id = predictions.set_index("instance_id")["prediction"]
    # one clip vs the average of test-time clips: same model, so the same ballpark (same units, EF %)
    assert abs(float(scores.mean()) - float(by_id.loc[ids].mean())) < 15

    resumed = train_model(TrainConfig(str(dataset), str(labels), "regression", target_col="ef",
                                      resume=str(result.run_dir), **{**TINY, "epochs": 2}))  # fmt: skip
    assert resumed.run_id == result.run_id and resumed.metrics["epochs_run"] == 2
    assert yaml.safe_load((result.run_dir / "config.yaml").read_text())["split"] == config["split"]


@pytest.mark.slow
def test_survival_run_with_tabular_fusion_and_fairness(tiny_dataset: tuple[Path, Path]) -> None:
    dataset, labels = tiny_dataset
    result = train_model(TrainConfig(str(dataset), str(labels), "survival", start_col="study_date",
                                     end_col="followup_date", event_col="event", head="coxph", tabular=["age", "sex"],
                                     fairness_penalty="demographic-parity", group_col="sex", fairness_weight=1.0,
                                     **TINY))  # fmt: skip
    config, predictions = _check_run_dir(result.run_dir, dataset)
    surv = [c for c in predictions.columns if c.startswith("surv_")]
    assert {"time", "event", "risk"} <= set(predictions.columns) and surv
    assert predictions[surv].apply(lambda c: c.between(0, 1)).all().all()
    assert (predictions[surv].diff(axis=1).iloc[:, 1:] <= 1e-9).all().all()  # curves never rise
    assert config["objective"]["baseline"] and config["tabular"]["columns"] == ["age", "sex"]
    metrics = pd.read_csv(result.run_dir / "logs" / "metrics.csv")
    assert "train_fairness" in metrics.columns


@pytest.mark.slow
def test_evidential_classification_via_cli(tiny_dataset: tuple[Path, Path]) -> None:
    dataset, labels = tiny_dataset
    args = ["train", str(dataset), "--labels", str(labels), "--task", "classification", "--head", "evidential",
            "--target-col", "ef_class", "--epochs", "1", "--frames", "4", "--size", "16", "--num-workers", "0",
            "--test-clips", "2", "--backbone", "framewise_cnn2d"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    run_dir = max((dataset / "runs").iterdir(), key=lambda p: p.stat().st_mtime)
    _, predictions = _check_run_dir(run_dir, dataset)
    probs = predictions[["prob_normal", "prob_reduced"]]
    assert (probs.sum(axis=1) - 1).abs().max() < 1e-5
    assert predictions["uncertainty"].between(0, 1).all()
    assert "kl_weight" in pd.read_csv(run_dir / "logs" / "metrics.csv").columns
    metrics = json.loads((run_dir / "metrics.json").read_text())  # `medflow train` evaluates the run at the end
    assert "accuracy" in metrics and "ece" in metrics
    assert (run_dir / "report.html").stat().st_size > 0


def test_cli_explains_a_missing_manifest(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["train", str(tmp_path), "--labels", "x.csv", "--task", "regression"])
    assert result.exit_code == 2 and "medflow ingest" in " ".join(result.output.split())


@pytest.mark.slow
def test_volume_run_with_a_discrete_time_head(tmp_path: Path) -> None:
    from tasks.synth.views import save_labels, write_view_dataset

    labels = write_view_dataset(tmp_path, patients=1, seed=0, frames=8, size=32, volumes=6)
    save_labels(labels, tmp_path / "labels.csv")
    result = train_model(TrainConfig(str(tmp_path), str(tmp_path / "labels.csv"), "survival", start_col="study_date",
                                     end_col="followup_date", event_col="event", head="logistic-hazard", kind="volume",
                                     backbone="cnn3d", epochs=1, num_workers=0, num_durations=5))  # fmt: skip
    predictions = pd.read_parquet(result.run_dir / "predictions.parquet")
    assert predictions["instance_id"].str.endswith("-CT").all() and "risk" in predictions
    run = load_run(result.run_dir)
    ids, volumes = run.test_clips(limit=2)
    assert volumes.shape[1:] == (16, 64, 64) and len(ids) == len(predictions)


def test_a_single_training_instance_is_refused_with_a_reason(tmp_path: Path) -> None:
    from tasks.synth.views import save_labels, write_view_dataset

    labels = write_view_dataset(tmp_path, patients=1, seed=0, frames=4, size=16)
    save_labels(labels, tmp_path / "labels.csv")
    assert len(pd.read_parquet(tmp_path / "manifest.parquet")) == 1
    with pytest.raises(ValueError, match="at least 2"):
        train_model(TrainConfig(str(tmp_path), str(tmp_path / "labels.csv"), "regression", target_col="ef",
                                backbone="cnn3d", frames=4, size=16, epochs=1, num_workers=0))  # fmt: skip


def test_cpu_runs_say_the_backbone_and_suggest_the_small_3d_cnn() -> None:
    from flows.commands.train import placement_note
    from models.callbacks import estimate_message

    note = placement_note(TrainConfig("ds", "labels.csv", "regression", accelerator="cpu", epochs=2))
    assert note.startswith("training r2plus1d_18 on the CPU") and "--backbone cnn3d" in note
    assert "--backbone" not in placement_note(TrainConfig("d", "l", "regression", accelerator="cpu", backbone="cnn3d"))
    message = estimate_message("r2plus1d_18", step_s=12.0, steps=30, epochs=2)
    assert "6 min per epoch" in message and "12 min for 2 epoch(s)" in message and "--backbone cnn3d" in message
