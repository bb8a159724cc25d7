"""Fairness penalties: zero when groups agree, positive and shrinking under gradient descent when they differ."""

from __future__ import annotations

import pytest
import torch

from models.fairness import fairness_penalty, group_gap


def test_gap_is_zero_for_equal_group_means_and_for_one_group() -> None:
    values = torch.tensor([[1.0], [3.0], [3.0], [1.0]])
    assert group_gap(values, torch.tensor([0, 0, 1, 1])).item() == 0.0
    assert group_gap(values, torch.zeros(4, dtype=torch.long)).item() == 0.0


def test_demographic_parity_gap_shrinks_by_gradient_descent() -> None:
    scores = torch.tensor([[2.0], [2.5], [0.0], [0.5]], requires_grad=True)
    groups = torch.tensor([0, 0, 1, 1])
    first = fairness_penalty("demographic-parity", scores, groups)
    assert first.item() == pytest.approx(1.0)
    opt = torch.optim.SGD([scores], lr=0.5)
    for _ in range(5):
        opt.zero_grad()
        fairness_penalty("demographic-parity", scores, groups).backward()
        opt.step()
    assert fairness_penalty("demographic-parity", scores, groups).item() < first.item()


def test_equalized_odds_conditions_on_the_outcome() -> None:
    # groups differ in base rate only: parity sees a gap, equalized odds (within outcome) does not
    scores = torch.tensor([[1.0], [1.0], [1.0], [0.0], [0.0], [0.0]])
    groups = torch.tensor([0, 0, 1, 0, 1, 1])
    outcome = torch.tensor([1, 1, 1, 0, 0, 0])
    assert fairness_penalty("demographic-parity", scores, groups).item() > 0
    assert fairness_penalty("equalized-odds", scores, groups, outcome).item() == 0.0
    with pytest.raises(ValueError, match="outcome"):
        fairness_penalty("equalized-odds", scores, groups)
