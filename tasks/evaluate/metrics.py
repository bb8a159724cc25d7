"""From a predictions table to flat metrics with bootstrap intervals, overall and per subgroup.

Columns follow the training run contract: survival (``time``, ``event``, ``risk``, ``surv_<days>``),
classification (``label``, ``prob_<class>``, optional ``uncertainty``), regression (``label``,
``prediction``); ``patient_id`` drives the bootstrap, and ``sex`` / ``age`` / ``group`` columns the subgroups.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum

import numpy as np
import pandas as pd

from tasks.errors import InputError
from tasks.evaluate import regression, survival, uncertainty
from tasks.evaluate.bootstrap import patient_weights, percentile_interval
from tasks.evaluate.options import EvaluationOptions
from tasks.evaluate.ranking import weighted_auc

SURV_COLUMN = re.compile(r"^surv_(\d+(?:\.\d+)?)$")
AGE_BANDS = (0.0, 50.0, 65.0, 80.0, np.inf)
AGE_LABELS = ("<50", "50-64", "65-79", "80+")

Values = dict[str, np.ndarray]


class Task(StrEnum):
    SURVIVAL = "survival"
    CLASSIFICATION = "classification"
    REGRESSION = "regression"


@dataclass
class MetricsResult:
    """Flat JSON-safe metrics plus the tables the report plots."""

    task: Task
    metrics: dict[str, object]
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)


def detect_task(frame: pd.DataFrame) -> Task:
    """The task a predictions table belongs to, from its columns."""
    if {"time", "event", "risk"} <= set(frame.columns):
        return Task.SURVIVAL
    if "label" in frame.columns and any(c.startswith("prob_") for c in frame.columns):
        return Task.CLASSIFICATION
    if {"label", "prediction"} <= set(frame.columns):
        return Task.REGRESSION
    raise InputError(
        "predictions.parquet has neither survival (time, event, risk), classification (label, prob_<class>) "
        "nor regression (label, prediction) columns; re-run training to write them"
    )


def survival_grid(frame: pd.DataFrame) -> tuple[list[str], np.ndarray]:
    """The ``surv_<days>`` columns sorted by day, and their days."""
    found = sorted(((float(m.group(1)), c) for c in frame.columns if (m := SURV_COLUMN.match(c))), key=lambda x: x[0])
    return [c for _, c in found], np.array([d for d, _ in found], dtype=np.float64)


def default_horizons(frame: pd.DataFrame) -> tuple[float, ...]:
    """Grid days (or rounded days) nearest the quartiles of observed event times."""
    events = frame.loc[frame["event"].astype(bool), "time"].to_numpy(dtype=float)
    if events.size == 0:
        return ()
    wanted = np.quantile(events, [0.25, 0.5, 0.75])
    _, grid = survival_grid(frame)
    picked = grid[np.abs(grid[None, :] - wanted[:, None]).argmin(axis=1)] if grid.size else np.round(wanted)
    return tuple(float(h) for h in dict.fromkeys(picked.tolist()))


def metric_values(frame: pd.DataFrame, task: Task, W: np.ndarray, options: EvaluationOptions) -> Values:
    """Every metric of ``task`` for each weight row: name → (B,)."""
    return _VALUE_FUNCTIONS[task](frame, W, options)


def compute_metrics(frame: pd.DataFrame, options: EvaluationOptions | None = None) -> MetricsResult:
    """Point estimates, bootstrap intervals, subgroup values and gaps, and the report's tables."""
    options = options or EvaluationOptions()
    task = detect_task(frame)
    frame = frame.reset_index(drop=True)
    if task is Task.SURVIVAL and options.horizons is None:
        options = _with_horizons(options, default_horizons(frame))
    ids = frame["patient_id"] if "patient_id" in frame.columns else pd.Series(np.arange(len(frame)))
    W = patient_weights(ids.to_numpy(), options.n_resamples, options.seed)
    values = metric_values(frame, task, W, options)
    metrics: dict[str, object] = {"task": str(task), "n": len(frame), "n_patients": int(ids.nunique())}
    if task is Task.SURVIVAL:
        metrics["n_events"] = int(frame["event"].astype(bool).sum())
    metrics.update(summarise(values, options.level))
    group_metrics, group_table = subgroup_metrics(frame, task, W, options)
    metrics.update(group_metrics)
    tables = {"subgroups": group_table, **_task_tables(frame, task, options, metrics)}
    return MetricsResult(task, metrics, tables)


def summarise(values: Values, level: float) -> dict[str, object]:
    """``name`` → point estimate, ``name_ci`` → [low, high]."""
    out: dict[str, object] = {}
    for name, v in values.items():
        out[name] = _finite(v[0])
        lo, hi = percentile_interval(v, level)
        out[f"{name}_ci"] = [_finite(lo), _finite(hi)]
    return out


def subgroup_columns(frame: pd.DataFrame, options: EvaluationOptions) -> dict[str, pd.Series]:
    """Subgroup labels: sex, age band (from ``age`` or ``age_years``), ``group`` and any configured column."""
    out: dict[str, pd.Series] = {}
    if "sex" in frame.columns:
        out["sex"] = frame["sex"]
    age = next((c for c in ("age", "age_years") if c in frame.columns), None)
    if age is not None:
        band = pd.cut(pd.to_numeric(frame[age], errors="coerce"), AGE_BANDS, right=False, labels=AGE_LABELS)
        out["age_band"] = band.astype(object)
    for name in ("group", *options.group_columns):
        if name in frame.columns and name not in out:
            out[name] = frame[name]
    return out


def subgroup_metrics(
    frame: pd.DataFrame, task: Task, W: np.ndarray, options: EvaluationOptions
) -> tuple[dict[str, object], pd.DataFrame]:
    """Per-group values with intervals, and per column the largest gap between groups with its interval."""
    flat: dict[str, object] = {}
    rows: list[dict[str, object]] = []
    for column, labels in subgroup_columns(frame, options).items():
        per_group: dict[str, Values] = {}
        for value in sorted(labels.dropna().astype(str).unique()):
            mask = (labels.astype(str) == value).to_numpy() & labels.notna().to_numpy()
            key = f"{column}={value}"
            flat[f"n__{key}"] = int(mask.sum())
            if mask.sum() < options.min_group_size:
                continue
            sub = frame.loc[mask].reset_index(drop=True)
            with np.errstate(invalid="ignore", divide="ignore"):
                per_group[value] = metric_values(sub, task, W[:, mask], options)
            for name, point in summarise(per_group[value], options.level).items():
                metric, ci = (name[:-3], "_ci") if name.endswith("_ci") else (name, "")
                flat[f"{metric}__{key}{ci}"] = point
            rows.append({"column": column, "group": value, "n": int(mask.sum()), **summarise(per_group[value], 0.95)})
        if len(per_group) >= 2:
            names = next(iter(per_group.values())).keys()
            for name in names:
                stacked = np.stack([v[name] for v in per_group.values()])
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    gap = np.nanmax(stacked, axis=0) - np.nanmin(stacked, axis=0)
                flat[f"{name}_gap__{column}"] = _finite(gap[0])
                lo, hi = percentile_interval(gap, options.level)
                flat[f"{name}_gap__{column}_ci"] = [_finite(lo), _finite(hi)]
    return flat, pd.DataFrame(rows)


def classification_arrays(frame: pd.DataFrame) -> tuple[list[str], uncertainty.Classified]:
    """Class names (from ``prob_<class>``) and the validated per-row output."""
    prob_cols = [c for c in frame.columns if c.startswith("prob_")]
    classes = [c[len("prob_") :] for c in prob_cols]
    index = {name: i for i, name in enumerate(classes)}
    raw = frame["label"]
    as_text = raw.map(lambda v: str(int(v)) if isinstance(v, (int, np.integer, float, np.floating)) else str(v))
    if not as_text.isin(index.keys()).all():
        raise InputError(f"labels must be one of the classes {classes} named by the prob_<class> columns")
    labels = as_text.map(index).to_numpy()
    unc = frame["uncertainty"].to_numpy(float) if "uncertainty" in frame.columns else None
    return classes, uncertainty.classified(frame[prob_cols].to_numpy(float), labels, unc)


def _survival_values(frame: pd.DataFrame, W: np.ndarray, options: EvaluationOptions) -> Values:
    t = frame["time"].to_numpy(float)
    d = frame["event"].astype(bool).to_numpy()
    r = frame["risk"].to_numpy(float)
    counts = survival.grouped_counts(t, d, W)
    cens = survival.censoring_weights(t, d, W, counts)
    out: Values = {"harrell_c": survival.harrell_c(t, d, r, W, counts=counts)}
    cols, grid = survival_grid(frame)
    if cols:
        S = frame[cols].to_numpy(float)
        out["antolini_c_td"] = survival.antolini_c_td(t, d, S, grid, W, counts=counts)
        inside = (grid >= t.min()) & (grid < t.max())
        if inside.sum() >= 2:
            out["ibs"] = survival.integrated_brier(t, d, S[:, inside], grid[inside], W, cens)
    horizons = list(options.horizons or ())
    if cols and horizons:
        usable = [h for h in horizons if h < t.max()]
        if usable:
            s_h = np.stack([_surv_at(S, grid, h) for h in usable], axis=1)
            brier = survival.brier_scores(t, d, s_h, np.array(usable), W, cens)
            out.update({f"brier_{_day_label(h)}": brier[:, k] for k, h in enumerate(usable)})
    if horizons:
        auc = survival.cumulative_dynamic_aucs(t, d, r, horizons, W, cens)
        out.update({f"auc_{_day_label(h)}": auc[:, k] for k, h in enumerate(horizons)})
    return out


def _classification_values(frame: pd.DataFrame, W: np.ndarray, options: EvaluationOptions) -> Values:
    classes, c = classification_arrays(frame)
    out: Values = {
        "accuracy": uncertainty.accuracy(c, W),
        "ece": uncertainty.ece(c, W, options.ece_bins),
        "brier": uncertainty.brier(c, W),
        "nll": uncertainty.nll(c, W),
        "auroc_uncertainty_error": uncertainty.auroc_uncertainty_error(c, W),
    }
    if len(classes) == 2:
        positive = c.labels == 1
        out["auroc"] = weighted_auc(c.probs[:, 1], W * positive, W * ~positive)
    return out


def _regression_values(frame: pd.DataFrame, W: np.ndarray, options: EvaluationOptions) -> Values:
    y = frame["label"].to_numpy(float)
    p = frame["prediction"].to_numpy(float)
    return {"mae": regression.mae(y, p, W), "r2": regression.r2(y, p, W)}


_VALUE_FUNCTIONS: dict[Task, Callable[[pd.DataFrame, np.ndarray, EvaluationOptions], Values]] = {
    Task.SURVIVAL: _survival_values,
    Task.CLASSIFICATION: _classification_values,
    Task.REGRESSION: _regression_values,
}


def _task_tables(
    frame: pd.DataFrame, task: Task, options: EvaluationOptions, metrics: dict[str, object]
) -> dict[str, pd.DataFrame]:
    tables: dict[str, pd.DataFrame] = {}
    if task is Task.SURVIVAL:
        t = frame["time"].to_numpy(float)
        d = frame["event"].astype(bool).to_numpy()
        cols, grid = survival_grid(frame)
        if cols and options.horizons:
            h = options.horizons[len(options.horizons) // 2]
            cal = survival.calibration_table(t, d, _surv_at(frame[cols].to_numpy(float), grid, h), h)
            cal.attrs["horizon"] = h
            tables["calibration"] = cal
            metrics[f"calibration_error_{_day_label(h)}"] = _finite(
                float(np.average(np.abs(cal["predicted"] - cal["observed"]), weights=cal["n"]))
            )
        if cols:
            inside = (grid >= t.min()) & (grid < t.max())
            bs = survival.brier_scores(t, d, frame[cols].to_numpy(float)[:, inside], grid[inside])[0]
            tables["brier_curve"] = pd.DataFrame({"days": grid[inside], "brier": bs})
        groups = risk_groups(frame["risk"].to_numpy(float), options.risk_groups)
        chi2, p = survival.logrank(t, d, groups)
        metrics["logrank_chi2"], metrics["logrank_p"] = _finite(chi2), _finite(p)
        tables["risk_groups"] = pd.DataFrame({"time": t, "event": d, "risk_group": groups})
    elif task is Task.CLASSIFICATION:
        _, c = classification_arrays(frame)
        tables["reliability"] = uncertainty.reliability_table(c, options.ece_bins)
        tables["accuracy_coverage"] = uncertainty.accuracy_coverage(c)
        abst = uncertainty.abstention(c, options.target_accuracy)
        metrics.update({k: _finite(v) for k, v in abst.items()})
        metrics["target_accuracy"] = options.target_accuracy
    return tables


def risk_groups(risk: np.ndarray, n_groups: int) -> np.ndarray:
    """Equal-size groups of predicted risk, labelled ``low`` … ``high``."""
    names = {2: ["low", "high"], 3: ["low", "middle", "high"]}.get(n_groups, [f"q{i + 1}" for i in range(n_groups)])
    ranks = pd.Series(risk).rank(method="first").to_numpy() - 1
    idx = np.minimum(ranks * n_groups // max(len(risk), 1), n_groups - 1).astype(int)
    return np.array(names, dtype=object)[idx]


def _surv_at(S: np.ndarray, grid: np.ndarray, horizon: float) -> np.ndarray:
    idx = int(np.searchsorted(grid, horizon, side="right") - 1)
    return np.ones(S.shape[0]) if idx < 0 else S[:, idx]


def _day_label(h: float) -> str:
    return str(int(h)) if float(h).is_integer() else str(h).replace(".", "_")


def _with_horizons(options: EvaluationOptions, horizons: tuple[float, ...]) -> EvaluationOptions:
    return replace(options, horizons=horizons)


def _finite(x: float) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None
