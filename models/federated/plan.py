"""The federation plan: which sites take part, what they train, and the label encoding they agreed on.

Every site keeps its dataset, labels and pseudonyms. Before training, each site reports a *label summary*
(counts and moments of its training labels, or its class names: aggregates only); :func:`agree_objective` pools
them into the one label encoding every site must use (a regression target standardised per site would make the
averaged head mean different things at each site).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

import pandas as pd

from tasks.errors import ConfigError

PLAN_FILE = "plan.json"
#: TrainConfig fields a federation sets itself (per site or from rounds) or does not support.
_NOT_SHARED = {"dataset", "labels", "task", "epochs", "resume", "weights", "run_id", "devices"}


class Algorithm(StrEnum):
    """How the server combines the sites' weights."""

    FEDAVG = "fedavg"  # McMahan et al. 2017: average weighted by local steps
    FEDPROX = "fedprox"  # Li et al. 2020: FedAvg plus a proximal term mu/2 ||w - w_global||^2 at every site


@dataclass(frozen=True)
class Site:
    """One participant: its federation name and the location names of its dataset and labels (never paths)."""

    name: str
    dataset: str
    labels: str


@dataclass
class FederationPlan:
    """Everything the job needs; written as ``plan.json`` into the job (it travels server → sites, never back)."""

    task: str
    sites: list[Site]
    options: dict[str, Any] = field(default_factory=dict)  # TrainConfig options shared by all sites
    rounds: int = 5
    local_epochs: int = 1
    algorithm: Algorithm = Algorithm.FEDAVG
    mu: float = 0.01
    objective: dict[str, Any] | None = None  # the agreed label encoding (Objective.state())
    run_id: str = ""
    #: batches per site per round (None: whole ``local_epochs``). Fewer local steps keep the sites' models closer
    #: to one another (client drift under label skew: each site pulls the head towards its own labels)
    local_batches: int | None = None

    def __post_init__(self) -> None:
        self.algorithm = Algorithm(self.algorithm)
        self.sites = [s if isinstance(s, Site) else Site(**s) for s in self.sites]
        if len(self.sites) < 2:
            raise ConfigError("a federation needs at least two sites")
        if len({s.name for s in self.sites}) != len(self.sites):
            raise ConfigError("site names must be unique")
        if self.rounds < 1 or self.local_epochs < 1:
            raise ConfigError("rounds and local epochs must be at least 1")
        if self.local_batches is not None and self.local_batches < 1:
            raise ConfigError("local batches must be at least 1")
        if self.algorithm is Algorithm.FEDPROX and not (math.isfinite(self.mu) and self.mu > 0):
            raise ConfigError("FedProx needs a positive mu")
        check_options(self.options)

    def site(self, name: str) -> Site:
        for site in self.sites:
            if site.name == name:
                return site
        raise ConfigError(f"site {name!r} is not part of this federation")

    def save(self, folder: Path) -> Path:
        path = Path(folder) / PLAN_FILE
        path.write_text(json.dumps(asdict(self), indent=1))
        return path

    @classmethod
    def load(cls, path: Path) -> FederationPlan:
        return cls(**json.loads(Path(path).read_text()))


def check_options(options: dict[str, Any]) -> None:
    """Refuse options a federation cannot honour (names only in the message)."""
    from models.training import TrainConfig

    allowed = {f.name for f in fields(TrainConfig)} - _NOT_SHARED
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ConfigError(f"options not available to a federation: {', '.join(unknown)}")
    if options.get("tabular"):
        raise ConfigError("tabular covariates are not federated: their encoding would have to be agreed as well")


def label_summary(task: str, train_rows: pd.DataFrame) -> dict[str, Any]:
    """What one site reports about its training labels: counts and moments, or class names; no row, no id."""
    if task == "regression":
        y = train_rows["target"].astype(float)
        return {"n": len(y), "sum": float(y.sum()), "sum_sq": float((y**2).sum())}
    if task == "classification":
        return {"n": len(train_rows), "classes": sorted(train_rows["target"].astype(str).unique().tolist())}
    if task == "survival":
        return {"n": len(train_rows), "events": int(train_rows["event"].sum()),
                "max_duration": float(train_rows["duration"].max())}  # fmt: skip
    raise ConfigError(f"unknown task {task!r}")


def agree_objective(task: str, head: str | None, summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """The label encoding every site uses (``Objective.state()``), pooled from the sites' label summaries."""
    from models.heads import build_objective
    from models.heads.survival import HORIZONS_DAYS

    objective = build_objective(task, head)
    state = objective.state()
    n = sum(s["n"] for s in summaries)
    if n < 2:
        raise ConfigError("the sites' training splits hold fewer than two instances in all")
    if task == "regression":
        mean = sum(s["sum"] for s in summaries) / n
        var = max(sum(s["sum_sq"] for s in summaries) / n - mean**2, 0.0)
        return {**state, "mean": mean, "std": math.sqrt(var) or 1.0}
    if task == "classification":
        classes = sorted(set().union(*(s["classes"] for s in summaries)))
        if len(classes) < 2:
            raise ConfigError("classification needs at least two classes across the sites")
        return {**state, "classes": classes}
    if state["head"] != "coxph":
        raise ConfigError("federated survival supports the coxph head (discrete-time heads need pooled duration "
                          "quantiles, which this federation does not compute)")  # fmt: skip
    if sum(s["events"] for s in summaries) < 1:
        raise ConfigError("survival needs at least one event across the sites")
    longest = max(s["max_duration"] for s in summaries)
    return {**state, "horizons": [h for h in HORIZONS_DAYS if h <= longest] or [int(longest / 2)]}
