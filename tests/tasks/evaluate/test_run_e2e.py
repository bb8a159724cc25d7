"""evaluate_run on a real training run: tiny contract dataset → train_model (1 epoch) → load_run → model checks."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from tasks.evaluate.options import EvaluationOptions
from tasks.evaluate.run import evaluate_run


@pytest.mark.slow
def test_evaluate_a_trained_evidential_run_with_model_checks(tmp_path: Path):
    from models.training import TrainConfig, train_model
    from tasks.synth.views import save_labels, write_view_dataset

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        labels = write_view_dataset(tmp_path, patients=18, seed=3, frames=24, size=32, fail_fraction=0.1)
        labels["ef_class"] = pd.cut(labels["ef"], [0, 40, 100], labels=["reduced", "normal"]).astype(str)
        save_labels(labels, tmp_path / "labels.csv")
        tiny = dict(frames=4, size=16, epochs=1, batch_size=8, num_workers=0, test_clips=2, backbone="cnn3d")
        run = train_model(TrainConfig(str(tmp_path), str(tmp_path / "labels.csv"), "classification",
                                      target_col="ef_class", head="evidential", **tiny))  # fmt: skip
        metrics = evaluate_run(run.run_dir, EvaluationOptions(n_resamples=50, clips=8, saliency_clips=2))
    finally:
        torch.set_num_threads(before)
    assert {"accuracy", "ece", "nll", "auroc_uncertainty_error", "abstain_rate"} <= metrics.keys()
    assert metrics["model_check_clips"] > 0 and "occlusion_delta__region=r1c1" in metrics
    assert isinstance(metrics["saliency_unreliable"], bool) and 0 <= metrics["auroc_ood"] <= 1
    on_disk = json.loads((run.run_dir / "metrics.json").read_text())
    assert "training" in on_disk and on_disk["auroc_ood"] == metrics["auroc_ood"]  # training's entries kept
    html = (run.run_dir / "report.html").read_text()
    assert "<h2>Occlusion</h2>" in html and "randomis" in html and "Out-of-distribution" in html
