"""Prefect flow ``evaluate``: metrics and report for a training run, published as artifacts.

Thin by design: the work is ``tasks.evaluate.run.evaluate_run``. Parameters are a run directory and
a few numbers; results are aggregate metrics (no patient rows, no PHI).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from tasks.evaluate.run import REPORT, evaluate_run, headline, run_options


@task(name="evaluate-run", cache_policy=NO_CACHE, persist_result=False)
def evaluate_task(run_dir: str, n_resamples: int | None, seed: int | None, model_checks: bool | None) -> dict[str, Any]:
    """Compute every metric, write metrics.json and report.html into the run directory."""
    options = run_options(Path(run_dir), n_resamples=n_resamples, seed=seed, model_checks=model_checks)
    return evaluate_run(Path(run_dir), options)


@flow(name="evaluate")
def evaluate(
    run_dir: str, n_resamples: int | None = None, seed: int | None = None, model_checks: bool | None = None
) -> dict:
    """Evaluate a training run directory; return the overall metrics (JSON-safe)."""
    metrics = evaluate_task(run_dir, n_resamples, seed, model_checks)
    publish(Path(run_dir), metrics)
    get_run_logger().info("evaluated run %s: %d metrics", Path(run_dir).name, len(metrics))
    return headline(metrics)


def publish(run_dir: Path, metrics: dict[str, Any]) -> None:
    """Markdown summary, overall and subgroup tables, and a link to the HTML report."""
    rows = metric_rows(headline(metrics))
    lines = [f"# Evaluation of run {run_dir.name}", "", f"Task: **{metrics.get('task')}**, n = {metrics.get('n')}.", "",
             "| metric | estimate | 95% CI |", "|---|---|---|"]  # fmt: skip
    lines += [f"| {r['metric']} | {_fmt(r['estimate'])} | {_fmt(r['ci_low'])} – {_fmt(r['ci_high'])} |" for r in rows]
    if metrics.get("saliency_unreliable"):
        lines += ["", "**Saliency maps failed the model-parameter randomisation test: do not interpret them.**"]
    create_markdown_artifact(key="evaluation-summary", markdown="\n".join(lines), description="Evaluation summary")
    create_table_artifact(key="evaluation-metrics", table=rows, description="Overall metrics with 95% intervals")
    groups = metric_rows({k: v for k, v in metrics.items() if "__" in k and not k.startswith("n__")})
    if groups:
        create_table_artifact(
            key="evaluation-subgroups", table=groups, description="Per-subgroup and per-occlusion metrics"
        )
    report = (run_dir / REPORT).resolve()
    create_link_artifact(
        key="evaluation-report", link=report.as_uri(), link_text=REPORT, description="Self-contained HTML report"
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
