"""Survival objective with pycox losses: CoxPH (DeepSurv), LogisticHazard and DeepHit (single risk).

Discrete-time heads use pycox's ``LabTransDiscreteTime`` (fitted on the training split; its
``out_features`` sizes the head). Survival curves are reported at fixed horizons (``surv_<days>``);
for Cox they come from a Breslow baseline hazard fitted on the training split after training.
``risk`` is higher for an earlier event: log-hazard for Cox, minus the summed survival curve
(a restricted mean survival time in interval units) for the discrete-time heads.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from pycox.models.loss import DeepHitSingleLoss, NLLLogistiHazardLoss
from pycox.preprocessing.label_transforms import LabTransDiscreteTime
from torch import Tensor

from models.heads.objectives import Objective
from models.losses import CoxMemoryLoss, deephit_rank_mat

SURVIVAL_HEADS = ("coxph", "logistic-hazard", "deephit")
HORIZONS_DAYS = (30, 90, 180, 365, 730, 1095, 1825, 3650)


class SurvivalObjective(Objective):
    task = "survival"

    def __init__(self, head: str = "coxph", num_durations: int = 20, cox_memory: int = 0,
                 deephit_alpha: float = 0.2, deephit_sigma: float = 0.1):  # fmt: skip
        super().__init__()
        self.head = head  # type: ignore[misc]
        self.num_durations = num_durations
        self.cox_memory = cox_memory
        self.deephit_alpha, self.deephit_sigma = deephit_alpha, deephit_sigma
        self.cuts: np.ndarray | None = None
        self.horizons: list[int] = []
        self.baseline: list[float] = []  # Cox: cumulative baseline hazard at each horizon
        if head == "coxph":
            self.criterion: torch.nn.Module = CoxMemoryLoss(cox_memory)
        elif head == "logistic-hazard":
            self.criterion = NLLLogistiHazardLoss()
        else:
            self.criterion = DeepHitSingleLoss(deephit_alpha, deephit_sigma)

    # --- fitting and encoding ------------------------------------------------------------------------
    def fit(self, labels: pd.DataFrame) -> None:
        durations = labels["duration"].to_numpy(dtype=np.float64)
        events = labels["event"].to_numpy(dtype=np.float64)
        if events.sum() < 1:
            raise ValueError("survival needs at least one event in the training split")
        self.horizons = [h for h in HORIZONS_DAYS if h <= durations.max()] or [int(np.median(durations))]
        if self.head != "coxph":
            lab = LabTransDiscreteTime(self.num_durations, scheme="quantiles")
            lab.fit(durations, events)
            self.cuts = np.asarray(lab.cuts, dtype=np.float64)

    def _labtrans(self) -> LabTransDiscreteTime:
        return LabTransDiscreteTime(self.cuts.tolist())

    def encode(self, labels: pd.DataFrame) -> dict[str, np.ndarray]:
        durations = labels["duration"].to_numpy(dtype=np.float64)
        events = labels["event"].to_numpy(dtype=np.float64)
        out = {"duration": durations.astype(np.float32), "event": events.astype(np.float32)}
        if self.head != "coxph" and len(durations):
            # pycox's transform fails when no row is an event inside the cuts (e.g. a tiny split, or durations past
            # the last cut, which it censors); append one event and one censored row at the last cut, drop them
            pad_d = np.append(durations, [self.cuts[-1], self.cuts[-1]])
            pad_e = np.append(events, [0.0, 1.0])
            idx, ev = self._labtrans().transform(pad_d, pad_e)
            idx, ev = idx[:-2], ev[:-2]
            out["idx_duration"], out["event_disc"] = idx.astype(np.int64), ev.astype(np.float32)
        elif self.head != "coxph":
            out["idx_duration"], out["event_disc"] = np.zeros(0, np.int64), np.zeros(0, np.float32)
        return out

    @property
    def out_features(self) -> int:
        return 1 if self.head == "coxph" else len(self.cuts)

    # --- loss ---------------------------------------------------------------------------------------
    def loss(self, out: Tensor, batch: dict[str, Tensor]) -> Tensor:
        out = out.float()
        if self.head == "coxph":
            return self.criterion(out.view(-1), batch["duration"].float(), batch["event"].float())
        idx, ev = batch["idx_duration"].long(), batch["event_disc"].float()
        if self.head == "logistic-hazard":
            return self.criterion(out, idx, ev)
        return self.criterion(out, idx, ev, deephit_rank_mat(idx, ev))

    # --- predictions --------------------------------------------------------------------------------
    def interval_survival(self, out: Tensor) -> Tensor:
        """Discrete heads: S at each cut (N, out_features)."""
        out = out.float()
        if self.head == "logistic-hazard":
            return (1 - torch.sigmoid(out)).cumprod(dim=1)
        pmf = F.pad(out, (0, 1)).softmax(dim=1)[:, :-1]
        return (1 - pmf.cumsum(dim=1)).clamp(min=0)

    def score(self, out: Tensor) -> Tensor:
        if self.head == "coxph":
            return out.view(-1).float()
        return -self.interval_survival(out).sum(dim=1)

    def fairness_label(self, batch: dict[str, Tensor]) -> Tensor:
        return batch["event"].long()

    def fit_baseline(self, log_h: np.ndarray, durations: np.ndarray, events: np.ndarray) -> None:
        """Breslow estimate of the cumulative baseline hazard at the horizons (Cox head only)."""
        shift = float(log_h.max())
        risk = np.exp(log_h - shift)
        times = np.unique(durations[events > 0])
        # Breslow with ties: d_t / Σ_{duration ≥ t} exp(h), accumulated over event times
        at_risk = np.array([risk[durations >= t].sum() for t in times]) * np.exp(shift)
        deaths = np.array([np.sum((durations == t) & (events > 0)) for t in times])
        cum = np.cumsum(deaths / at_risk)
        d = times
        self.baseline = [float(cum[d <= t][-1]) if np.any(d <= t) else 0.0 for t in self.horizons]

    def survival_at_horizons(self, out: Tensor) -> np.ndarray:
        if self.head == "coxph":
            if not self.baseline:
                raise ValueError("Cox survival curves need fit_baseline() on the training split first")
            h0 = np.asarray(self.baseline)[None, :]
            return np.exp(-h0 * np.exp(out.view(-1, 1).float().cpu().numpy()))
        s = self.interval_survival(out).cpu().numpy()
        s = np.concatenate([np.ones((s.shape[0], 1)), s], axis=1)  # S(t) = 1 before the first cut
        pos = np.searchsorted(self.cuts, np.asarray(self.horizons), side="right")  # cuts <= horizon
        return s[:, pos]

    def columns(self, out: Tensor) -> dict[str, np.ndarray]:
        cols = {"risk": self.score(out).cpu().numpy()}
        surv = self.survival_at_horizons(out)
        for j, t in enumerate(self.horizons):
            cols[f"surv_{t}"] = surv[:, j]
        return cols

    def state(self) -> dict[str, Any]:
        return {
            **super().state(),
            "num_durations": self.num_durations,
            "cox_memory": self.cox_memory,
            "deephit_alpha": self.deephit_alpha,
            "deephit_sigma": self.deephit_sigma,
            "cuts": None if self.cuts is None else [float(c) for c in self.cuts],
            "horizons": list(self.horizons),
            "baseline": list(self.baseline),
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> SurvivalObjective:
        obj = cls(state["head"], state["num_durations"], state["cox_memory"], state["deephit_alpha"],
                  state["deephit_sigma"])  # fmt: skip
        obj.cuts = None if state["cuts"] is None else np.asarray(state["cuts"], dtype=np.float64)
        obj.horizons, obj.baseline = list(state["horizons"]), list(state["baseline"])
        return obj
