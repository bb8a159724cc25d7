"""Fairness penalties added to the training loss (the seed paper's Fairlearn/FairTorch idea, differentiable).

- demographic parity: the group means of the model's output should agree;
- equalized odds: the same, within each outcome class (label, event, above/below mean target).

The penalty is the mean absolute gap between each group's mean and the overall mean, averaged over
output columns (and outcome classes). Groups absent from a batch are skipped, so it is a mini-batch
estimate; larger batches give a steadier signal. The evaluation reports the effect on subgroup gaps.
"""

from __future__ import annotations

from enum import StrEnum

import torch
from torch import Tensor


class FairnessPenalty(StrEnum):
    DEMOGRAPHIC_PARITY = "demographic-parity"
    EQUALIZED_ODDS = "equalized-odds"


def group_gap(values: Tensor, groups: Tensor) -> Tensor:
    """Mean |E[v | g] − E[v]| over the groups present; ``values`` (N, K), ``groups`` (N,) ints."""
    if values.dim() != 2 or groups.shape != (values.shape[0],):
        raise ValueError(f"values (N, K) and groups (N,) expected, got {tuple(values.shape)}, {tuple(groups.shape)}")
    present = torch.unique(groups)
    if present.numel() < 2:
        return values.sum() * 0.0
    overall = values.mean(dim=0)
    gaps = [(values[groups == g].mean(dim=0) - overall).abs().mean() for g in present]
    return torch.stack(gaps).mean()


def fairness_penalty(kind: str, values: Tensor, groups: Tensor, outcome: Tensor | None = None) -> Tensor:
    """The penalty ``kind`` for one batch (0 when the batch cannot measure it)."""
    kind = FairnessPenalty(kind)
    if kind is FairnessPenalty.DEMOGRAPHIC_PARITY:
        return group_gap(values, groups)
    if outcome is None:
        raise ValueError("equalized-odds needs the outcome of each sample")
    terms = [group_gap(values[outcome == y], groups[outcome == y]) for y in torch.unique(outcome)]
    return torch.stack(terms).mean()
