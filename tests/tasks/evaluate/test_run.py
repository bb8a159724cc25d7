"""evaluate_run on a run directory holding only predictions: files written, keys flat, no row-level data leaks."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from flows.cli import app
from tasks.errors import InputError
from tasks.evaluate.options import EvaluationOptions
from tasks.evaluate.run import evaluate_run


@pytest.fixture
def run_dir(tmp_path: Path, surv_frame) -> Path:
    run = tmp_path / "runs" / "run-0001"
    run.mkdir(parents=True)
    # ids with '-' cannot occur by chance inside the base64 of an embedded image
    frame = surv_frame.assign(
        patient_id="pt-" + surv_frame["patient_id"] + "-x", instance_id=surv_frame["instance_id"] + "-x"
    )
    frame.to_parquet(run / "predictions.parquet", index=False)
    (run / "metrics.json").write_text(json.dumps({"training": {"epochs": 3}, "harrell_c": 0.0}))
    (run / "config.yaml").write_text("task: survival\nevaluation:\n  n_resamples: 30\n  horizons: [90, 180]\n")
    return run


def test_evaluate_run_writes_metrics_and_a_self_contained_report(run_dir: Path):
    metrics = evaluate_run(run_dir)  # options from config.yaml's evaluation section
    on_disk = json.loads((run_dir / "metrics.json").read_text())
    assert on_disk["training"] == {"epochs": 3}  # training's entries are kept
    assert on_disk["harrell_c"] == metrics["harrell_c"] > 0.6  # recomputed ones replaced
    assert {
        "antolini_c_td",
        "ibs",
        "brier_90",
        "auc_180",
        "harrell_c__sex=F",
        "harrell_c_gap__age_band",
    } <= on_disk.keys()
    snake = re.compile(r"^[a-z0-9_]+(__[a-z0-9_]+(=[^ ]+)?)?$")  # metric[__column[=group value]]
    assert all(snake.match(k) for k in on_disk), [k for k in on_disk if not snake.match(k)]
    html = (run_dir / "report.html").read_text()
    assert html.count("data:image/png;base64,") >= 4 and "<script" not in html and "src='http" not in html
    assert "Skipped: the run has no checkpoints folder." in html
    frame = pd.read_parquet(run_dir / "predictions.parquet")
    for value in list(frame["patient_id"].unique()) + list(frame["instance_id"]):
        assert value not in html and value not in json.dumps(on_disk)


def test_missing_predictions_is_a_clear_error(tmp_path: Path):
    with pytest.raises(InputError, match=r"no predictions\.parquet"):
        evaluate_run(tmp_path, EvaluationOptions(n_resamples=0))


def test_cli_evaluates_and_fails_with_a_remedy(run_dir: Path, tmp_path: Path):
    runner = CliRunner()
    ok = runner.invoke(app, ["evaluate", str(run_dir), "--resamples", "10", "--no-model-checks"])
    assert ok.exit_code == 0, ok.output
    assert "harrell_c" in ok.output and (run_dir / "report.html").exists()
    bad = runner.invoke(app, ["evaluate", str(tmp_path)])
    assert bad.exit_code == 2 and "train the run first" in bad.output


@pytest.mark.slow
def test_flow_publishes_artifacts(run_dir: Path, prefect_server: str, tmp_path: Path, monkeypatch):
    from prefect.client.orchestration import get_client

    from flows.evaluate import evaluate
    from tasks.locations import LocationKind, Locations

    monkeypatch.setenv("MEDFLOW_STATE_DIR", str(tmp_path / "state"))
    run = Locations.from_settings().register(LocationKind.RUN, run_dir)  # the flow takes a name, never a path
    result = evaluate(run, n_resamples=20, model_checks=False)
    assert result["harrell_c"] > 0.6 and not any("__" in k for k in result)

    async def artifacts() -> dict[str, str]:
        async with get_client() as client:
            return {a.key: str(a.data) for a in await client.read_artifacts() if a.key}

    found = asyncio.run(artifacts())
    assert {"evaluation-summary", "evaluation-metrics", "evaluation-subgroups"} <= set(found)
    # the report is named in the summary, never linked: a link would put the dataset's path into Prefect
    assert "report.html" in found["evaluation-summary"] and "evaluation-report" not in found
    assert not any(str(tmp_path) in data for data in found.values())
