"""Prefect flow ``evaluate``: metrics and report for a training run, published as artifacts.

Thin by design: the work is ``tasks.evaluate.run.evaluate_run``. Parameters are the run's location name (the
``run-…`` handle the ``train`` flow registered and announced in ``medflow.model.trained``) and a few numbers;
results are aggregate metrics (no patient rows, no PHI, no path: the report is named, not linked).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from flows.redact import redacted_errors
from tasks.evaluate.run import REPORT, evaluate_run, headline, run_options
from tasks.locations import LocationKind, LocationName, Locations


@task(name="evaluate-run", cache_policy=NO_CACHE, persist_result=False)
def evaluate_task(
    run_dir: LocationName, n_resamples: int | None, seed: int | None, model_checks: bool | None
) -> dict[str, Any]:
    """Compute every metric, write metrics.json and report.html into the run directory."""
    with redacted_errors("evaluate-run"):
        path = Locations.from_settings().path(LocationKind.RUN, run_dir)
        options = run_options(path, n_resamples=n_resamples, seed=seed, model_checks=model_checks)
        return evaluate_run(path, options)


@flow(name="evaluate", persist_result=False)
def evaluate(
    run_dir: LocationName, n_resamples: int | None = None, seed: int | None = None, model_checks: bool | None = None
) -> dict:
    """Evaluate the training run ``run_dir`` (a location name); return the overall metrics (JSON-safe)."""
    with redacted_errors("evaluate"):
        path = Locations.from_settings().path(LocationKind.RUN, run_dir)
        metrics = evaluate_task(run_dir, n_resamples, seed, model_checks)
        publish(run_id_of(path, run_dir), metrics)
    get_run_logger().info("evaluated run %s: %d metrics", run_dir, len(metrics))
    return headline(metrics)


def run_id_of(run_dir: Path, name: str) -> str:
    """The run id recorded in ``config.yaml`` (opaque, generated), else the location name."""
    import yaml

    try:
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
    except (OSError, yaml.YAMLError):
        return name
    run_id = config.get("run_id") if isinstance(config, dict) else None
    return str(run_id) if run_id else name


def publish(run_id: str, metrics: dict[str, Any]) -> None:
    """Markdown summary (naming the report), overall and subgroup tables."""
    rows = metric_rows(headline(metrics))
    lines = [f"# Evaluation of run {run_id}", "", f"Task: **{metrics.get('task')}**, n = {metrics.get('n')}.", "",
             "| metric | estimate | 95% CI |", "|---|---|---|"]  # fmt: skip
    lines += [f"| {r['metric']} | {_fmt(r['estimate'])} | {_fmt(r['ci_low'])} – {_fmt(r['ci_high'])} |" for r in rows]
    if metrics.get("saliency_unreliable"):
        lines += ["", "**Saliency maps failed the model-parameter randomisation test: do not interpret them.**"]
    lines += ["", f"Self-contained report: `{REPORT}` in the run directory (`runs/{run_id}/` of the dataset)."]
    create_markdown_artifact(key="evaluation-summary", markdown="\n".join(lines), description="Evaluation summary")
    create_table_artifact(key="evaluation-metrics", table=rows, description="Overall metrics with 95% intervals")
    groups = metric_rows({k: v for k, v in metrics.items() if "__" in k and not k.startswith("n__")})
    if groups:
        create_table_artifact(
            key="evaluation-subgroups", table=groups, description="Per-subgroup and per-occlusion metrics"
        )


def metric_rows(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """Numeric metrics as table rows, each with its interval when there is one."""
    rows = []
    for name, value in metrics.items():
        if name.endswith("_ci") or isinstance(value, bool) or not isinstance(value, int | float | None):
            continue
        ci = metrics.get(f"{name}_ci")
        lo, hi = ci if isinstance(ci, list) else (None, None)
        rows.append({"metric": name, "estimate": value, "ci_low": lo, "ci_high": hi})
    return rows


def _fmt(x: Any) -> str:
    return "–" if x is None else f"{x:.4g}"
