"""``evaluate_run``: a training run directory in, ``metrics.json`` and ``report.html`` out.

Metrics come from ``predictions.parquet`` alone; occlusion, saliency and OOD checks are added when the
run's checkpoint loads through ``models.run.load_run``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from tasks.atomic import atomic_write_bytes
from tasks.errors import InputError
from tasks.evaluate import plots, survival
from tasks.evaluate.metrics import MetricsResult, Task, classification_arrays, compute_metrics
from tasks.evaluate.options import EvaluationOptions
from tasks.evaluate.progress import NO_PROGRESS, ProgressSink
from tasks.evaluate.ranking import weighted_auc
from tasks.evaluate.report import Section, metrics_table, render
from tasks.registry.tracking import record_evaluation

log = logging.getLogger(__name__)

PREDICTIONS = "predictions.parquet"
METRICS = "metrics.json"
REPORT = "report.html"


def run_options(run_dir: Path, **overrides: Any) -> EvaluationOptions:
    """Options from the run's ``config.yaml`` (``evaluation:`` section) with non-None overrides on top."""
    section = dict(_read_config(Path(run_dir)).get("evaluation") or {})
    section.update({k: v for k, v in overrides.items() if v is not None})
    return EvaluationOptions.from_mapping(section)


def headline(metrics: dict[str, Any]) -> dict[str, Any]:
    """The overall metrics and their intervals, without per-subgroup and per-occlusion keys."""
    return {k: v for k, v in metrics.items() if "__" not in k}


def evaluate_run(
    run_dir: Path, options: EvaluationOptions | None = None, progress: ProgressSink = NO_PROGRESS
) -> dict[str, Any]:
    """Compute every metric of the run, write ``metrics.json`` and ``report.html``; return the metrics.

    ``progress`` hears about the model checks (the slow part on a CPU), in clip passes.
    """
    run_dir = Path(run_dir)
    path = run_dir / PREDICTIONS
    if not path.is_file():
        raise InputError(
            f"{run_dir.name}: no {PREDICTIONS}; train the run first (medflow train) or pass a run directory"
        )
    options = options or run_options(run_dir)
    frame = pd.read_parquet(path)
    result = compute_metrics(frame, options)
    log.info("evaluated %d predictions of task %s (%d resamples)", len(frame), result.task, options.n_resamples)
    sections = metric_sections(result, options)
    if options.model_checks:
        sections += _model_sections(run_dir, frame, result, options, progress)
    metrics = _json_safe(result.metrics)
    _write_metrics(run_dir / METRICS, metrics)
    atomic_write_bytes(run_dir / REPORT, render(f"Evaluation of run {run_dir.name}", sections).encode())
    record_evaluation(run_dir, metrics)  # the run's MLflow model version carries its evaluation
    return metrics


def metric_sections(result: MetricsResult, options: EvaluationOptions) -> list[Section]:
    """Report sections for the metrics computed from the predictions table."""
    m, t = result.metrics, result.tables
    names = [k for k in m if not k.endswith("_ci") and "__" not in k and isinstance(m.get(f"{k}_ci"), list)]
    summary = (
        f"Task: {result.task}. {m['n']} predictions from {m['n_patients']} patients; {options.level:.0%} "
        f"intervals from {options.n_resamples} bootstrap resamples by patient."
    )
    sections = [Section("Summary", [summary], tables=[metrics_table(m, names)])]
    if result.task is Task.SURVIVAL:
        s = Section("Survival")
        if "risk_groups" in t:
            s.figures.append(plots.km_by_risk_group(t["risk_groups"], m.get("logrank_p")))
            s.paragraphs.append(
                f"Log-rank test across predicted-risk groups: χ² = {m.get('logrank_chi2')}, p = {m.get('logrank_p')}."
            )
        if "calibration" in t:
            s.tables.append(t["calibration"])
            s.figures.append(plots.survival_calibration(t["calibration"]))
        if "brier_curve" in t:
            s.figures.append(plots.brier_curve(t["brier_curve"]))
        sections.append(s)
    elif result.task is Task.CLASSIFICATION:
        cov = None if m.get("abstain_rate") is None else 1.0 - float(m["abstain_rate"])
        text = (
            f"Abstaining on cases with uncertainty above {m.get('abstain_threshold')} ('I don't know' rate "
            f"{m.get('abstain_rate')}) keeps accuracy at {m.get('accuracy_retained')} "
            f"(target {options.target_accuracy})."
        )
        s = Section("Uncertainty", [text])
        s.figures += [
            plots.reliability(t["reliability"]),
            plots.accuracy_coverage(t["accuracy_coverage"], options.target_accuracy, cov),
        ]
        sections.append(s)
    groups = t.get("subgroups", pd.DataFrame())
    if not groups.empty:
        primary = next(k for k in ("harrell_c", "accuracy", "mae") if k in groups.columns)
        gaps = {k: v for k, v in m.items() if "_gap__" in k and not k.endswith("_ci")}
        gap_table = pd.DataFrame([{"gap": k, "value": v, "ci": m.get(f"{k}_ci")} for k, v in gaps.items()])
        value_cols = [c for c in groups.columns if c in ("column", "group", "n") or not c.endswith("_ci")]
        fig = plots.subgroup_forest(groups, primary)
        text = "Every metric per group; the gap is the largest difference between groups, with its interval."
        sections.append(Section("Subgroups", [text], [groups[value_cols], gap_table], [fig] if fig else []))
    return sections


def _model_sections(
    run_dir: Path, frame: pd.DataFrame, result: MetricsResult, options: EvaluationOptions, progress: ProgressSink
) -> list[Section]:
    if not (run_dir / "checkpoints").is_dir():
        return [Section("Model checks", ["Skipped: the run has no checkpoints folder."])]
    try:
        import torch

        from models.run import load_run
        from tasks.evaluate.model_checks import ModelAdapter, check_model

        run = load_run(run_dir)
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        ids, clips = run.test_clips(options.clip_cap(device.type == "cuda"))  # a bounded sample of the test split
    except (ImportError, OSError, KeyError, ValueError, RuntimeError, TypeError) as exc:
        log.warning(
            "model checks skipped: the checkpoint of run %s could not be loaded (%s)", run_dir.name, type(exc).__name__
        )
        return [Section("Model checks", [f"Skipped: the checkpoint could not be loaded ({type(exc).__name__})."])]
    if not ids:
        return [Section("Model checks", ["Skipped: no test clips are available for this run."])]
    adapter = ModelAdapter(run.model, run.prepare, run.score, _uncertainty_fn(run), device)
    metric, name = _clip_metric(frame, ids, result.task)
    checked = check_model(adapter, clips, options, metric, name, progress)
    result.metrics.update(checked.metrics)
    return checked.sections


def _uncertainty_fn(run: Any) -> Callable | None:
    objective = getattr(run, "objective", None)
    if getattr(run, "task", None) != "classification" or objective is None:
        return None
    import torch

    def uncertainty(out: Any) -> Any:
        cols = objective.columns(out)
        if "uncertainty" in cols:
            return torch.as_tensor(cols["uncertainty"])
        probs = np.stack([v for k, v in cols.items() if k.startswith("prob_")], axis=1)
        return torch.as_tensor(1.0 - probs.max(axis=1))

    return uncertainty


def _clip_metric(frame: pd.DataFrame, ids: list[str], task: Task) -> tuple[Callable[[np.ndarray], float] | None, str]:
    """Metric of clip scores against the labels of those instances (matched by instance id)."""
    if "instance_id" not in frame.columns:
        return None, ""
    rows = (
        frame.assign(instance_id=frame["instance_id"].astype(str))
        .drop_duplicates("instance_id")
        .set_index("instance_id")
    )
    known = [i for i in ids if i in rows.index]
    if len(known) != len(ids):
        return None, ""
    rows = rows.loc[ids]
    if task is Task.SURVIVAL:
        t, d = rows["time"].to_numpy(float), rows["event"].astype(bool).to_numpy()
        return (lambda s: float(survival.harrell_c(t, d, s)[0])), "harrell_c"
    if task is Task.CLASSIFICATION:
        classes, c = classification_arrays(rows.reset_index())
        if len(classes) != 2:
            return None, ""
        pos = c.labels == 1
        return (lambda s: float(weighted_auc(s, pos[None, :] * 1.0, ~pos[None, :] * 1.0)[0])), "auroc"
    y = rows["label"].to_numpy(float)
    return (lambda s: float(np.mean(np.abs(y - s)))), "mae"


def _read_config(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "config.yaml"
    if not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text())
    return data if isinstance(data, dict) else {}


def _write_metrics(path: Path, metrics: dict[str, Any]) -> None:
    """Merge into an existing metrics.json (training's quick metrics stay unless recomputed here)."""
    existing: dict[str, Any] = {}
    if path.is_file():
        try:
            loaded = json.loads(path.read_text())
            existing = loaded if isinstance(loaded, dict) else {}
        except json.JSONDecodeError:
            log.warning("replacing an unreadable %s", path.name)
    atomic_write_bytes(path, json.dumps({**existing, **metrics}, indent=2, sort_keys=True).encode())


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else None
    return value
