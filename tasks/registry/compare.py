"""Champion vs challenger on the same patients: paired patient-level bootstrap of metric differences.

Both models' predictions for the same rows share one weight matrix (``tasks.evaluate.bootstrap``), so each
resample draws the same patients for both and the interval is of the *paired* difference. Differences are
signed so that positive means the challenger is better (C-index and AUROC up; IBS, ECE and MAE down).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tasks.evaluate.bootstrap import patient_weights, percentile_interval
from tasks.evaluate.metrics import Task, default_horizons, metric_values, subgroup_columns
from tasks.evaluate.options import EvaluationOptions

#: Metrics compared per task, the first decides "better on the point estimate"; +1 higher is better.
PRIMARY: dict[Task, tuple[tuple[str, int], ...]] = {
    Task.SURVIVAL: (("harrell_c", +1), ("ibs", -1)),
    Task.CLASSIFICATION: (("auroc", +1), ("ece", -1)),
    Task.REGRESSION: (("mae", -1),),
}


@dataclass(frozen=True)
class PromotionPolicy:
    """When a challenger replaces the champion."""

    margin: float = 0.01  # non-inferiority: every primary metric's improvement lower bound must exceed -margin
    subgroup_tolerance: float = 0.05  # no subgroup may lose more than this on the first primary metric
    min_subgroup_patients: int = 10  # smaller subgroups are listed, not judged
    n_resamples: int = 1000
    seed: int = 0
    level: float = 0.95


@dataclass(frozen=True)
class Difference:
    metric: str
    group: str  # "all" or "column=value"
    patients: int
    champion: float
    challenger: float
    improvement: float  # signed: > 0 means the challenger is better
    low: float
    high: float

    def row(self) -> dict[str, object]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class Decision:
    promote: bool
    reasons: list[str]
    differences: list[Difference] = field(default_factory=list)
    #: overall bootstrap differences (signed, > 0 better) per primary metric: the promotion plots draw them
    distributions: dict[str, np.ndarray] = field(default_factory=dict)

    def table(self) -> list[dict[str, object]]:
        return [d.row() for d in self.differences]


def compare(champion: pd.DataFrame, challenger: pd.DataFrame, task: Task, policy: PromotionPolicy) -> Decision:
    """Paired bootstrap over the rows both frames share (same ``instance_id`` order), overall and per subgroup.

    Frames follow ``predictions.parquet`` (labels, prediction columns, ``patient_id``, sex/age/group).
    """
    if not champion["instance_id"].equals(challenger["instance_id"]):
        raise ValueError("champion and challenger must be scored on the same instances, in the same order")
    ids = challenger["patient_id"].to_numpy()
    options = EvaluationOptions(n_resamples=policy.n_resamples, seed=policy.seed, level=policy.level)
    if task is Task.SURVIVAL:
        options = EvaluationOptions(**{**options.__dict__, "horizons": default_horizons(challenger)})
    W = patient_weights(ids, policy.n_resamples, policy.seed)
    metrics = PRIMARY[task]
    distributions: dict[str, np.ndarray] = {}
    diffs = _differences(champion, challenger, task, W, options, metrics, "all", len(set(ids)), policy.level,
                         distributions)  # fmt: skip
    for column, labels in subgroup_columns(challenger, options).items():
        for value in sorted(labels.dropna().astype(str).unique()):
            mask = (labels.astype(str) == value).to_numpy() & labels.notna().to_numpy()
            patients = len(set(ids[mask]))
            sub = [f.loc[mask].reset_index(drop=True) for f in (champion, challenger)]
            with np.errstate(invalid="ignore", divide="ignore"):
                diffs += _differences(*sub, task, W[:, mask], options, metrics[:1], f"{column}={value}", patients,
                                      policy.level)  # fmt: skip
    return Decision(*_decide(diffs, metrics, policy), diffs, distributions)


def _differences(
    champion: pd.DataFrame, challenger: pd.DataFrame, task: Task, W: np.ndarray, options: EvaluationOptions,
    metrics: tuple[tuple[str, int], ...], group: str, patients: int, level: float,
    samples: dict[str, np.ndarray] | None = None,
) -> list[Difference]:  # fmt: skip
    a, b = metric_values(champion, task, W, options), metric_values(challenger, task, W, options)
    out = []
    for name, sign in metrics:
        if name not in a or name not in b:
            continue
        d = sign * (b[name] - a[name])
        if samples is not None:
            samples[name] = np.asarray(d[1:], dtype=float)  # index 0 is the full sample, the rest resamples
        low, high = percentile_interval(d, level)
        out.append(Difference(name, group, patients, float(a[name][0]), float(b[name][0]), float(d[0]), low, high))
    return out


def _decide(diffs: list[Difference], metrics: tuple[tuple[str, int], ...], policy: PromotionPolicy):
    reasons: list[str] = []
    overall = {d.metric: d for d in diffs if d.group == "all"}
    for name, _ in metrics:
        d = overall.get(name)
        if d is None or not np.isfinite(d.low):
            reasons.append(f"{name}: not computable on the shared held-out patients")
        elif d.low <= -policy.margin:
            reasons.append(f"{name}: improvement lower bound {d.low:.4f} is not above -{policy.margin} (inferior "
                           f"or too uncertain, {d.patients} patients)")  # fmt: skip
    first = overall.get(metrics[0][0])
    if first is not None and np.isfinite(first.improvement) and first.improvement <= 0:
        reasons.append(f"{first.metric}: point estimate {first.challenger:.4f} is not better than the champion's "
                       f"{first.champion:.4f}")  # fmt: skip
    for d in diffs:
        if d.group == "all" or d.patients < policy.min_subgroup_patients or not np.isfinite(d.improvement):
            continue
        if d.improvement < -policy.subgroup_tolerance:
            reasons.append(f"subgroup {d.group}: {d.metric} worse by {-d.improvement:.4f} "
                           f"(tolerance {policy.subgroup_tolerance}, {d.patients} patients)")  # fmt: skip
    return (not reasons), reasons
