"""Loss functions: shape checks, evidential loss properties, Cox risk-set memory, DeepHit rank matrix."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pycox.models.data import pair_rank_mat
from pycox.models.loss import cox_ph_loss

from models.losses import (
    CoxMemoryLoss,
    deephit_rank_mat,
    evidential_mse_loss,
    evidential_uncertainty,
    kl_dirichlet_to_uniform,
)


def test_evidential_loss_falls_as_evidence_for_the_true_class_grows() -> None:
    target = torch.tensor([1])
    losses = [evidential_mse_loss(torch.tensor([[0.0, e, 0.0]]), target, kl_weight=1.0).item() for e in (0, 1, 10, 100)]
    assert losses == sorted(losses, reverse=True)
    assert losses[-1] < 0.02


def test_kl_term_penalises_only_misleading_evidence() -> None:
    target = torch.tensor([0, 0])
    honest = torch.tensor([[5.0, 0.0, 0.0], [9.0, 0.0, 0.0]])  # evidence only on the true class
    misleading = torch.tensor([[5.0, 4.0, 0.0], [9.0, 0.0, 3.0]])
    assert evidential_mse_loss(honest, target, 1.0) == pytest.approx(evidential_mse_loss(honest, target, 0.0).item())
    assert evidential_mse_loss(misleading, target, 1.0) > evidential_mse_loss(misleading, target, 0.0)
    assert torch.allclose(kl_dirichlet_to_uniform(torch.ones(2, 4)), torch.zeros(2), atol=1e-6)
    assert (kl_dirichlet_to_uniform(torch.tensor([[3.0, 1.0], [1.0, 7.0]])) > 0).all()


def test_uncertainty_is_one_without_evidence_and_falls_with_it() -> None:
    u = evidential_uncertainty(torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 1.0], [50.0, 0.0, 0.0]]))
    assert u[0] == pytest.approx(1.0) and u[0] > u[1] > u[2] > 0


def test_evidential_loss_checks_shapes() -> None:
    with pytest.raises(ValueError, match=r"target: expected shape \(2\)"):
        evidential_mse_loss(torch.rand(2, 3), torch.tensor([0, 1, 2]), 0.0)
    with pytest.raises(ValueError, match=r"evidence: expected shape \(N, N\)"):
        evidential_mse_loss(torch.rand(6), torch.tensor([0]), 0.0)


def test_cox_memory_without_memory_is_pycox() -> None:
    torch.manual_seed(0)
    h, d, e = torch.randn(8), torch.rand(8) * 100, (torch.rand(8) < 0.5).float()
    e[0] = 1
    assert CoxMemoryLoss(0)(h, d, e) == pytest.approx(cox_ph_loss(h, d, e).item())


def test_cox_memory_widens_risk_sets_but_only_current_batch_has_gradient() -> None:
    torch.manual_seed(0)
    loss = CoxMemoryLoss(memory=4).train()
    previous = torch.randn(6)
    loss(previous, torch.rand(6) * 100, torch.ones(6))  # fills the memory
    h = torch.randn(2, requires_grad=True)
    d, e = torch.tensor([10.0, 20.0]), torch.tensor([1.0, 0.0])
    with_memory = loss(h, d, e)
    with_memory.backward()
    assert with_memory.item() != pytest.approx(cox_ph_loss(h.detach(), d, e).item())
    assert h.grad is not None and torch.isfinite(h.grad).all()


def test_cox_loss_of_a_batch_without_events_is_zero_not_nan() -> None:
    h = torch.randn(3, requires_grad=True)
    out = CoxMemoryLoss(4)(h, torch.rand(3), torch.zeros(3))
    out.backward()
    assert out.item() == 0.0 and torch.isfinite(h.grad).all()


def test_deephit_rank_matrix_matches_pycox() -> None:
    rng = np.random.default_rng(0)
    idx, ev = rng.integers(0, 5, 12), (rng.random(12) < 0.5).astype("float32")
    ours = deephit_rank_mat(torch.from_numpy(idx), torch.from_numpy(ev)).numpy()
    assert np.array_equal(ours, pair_rank_mat(idx, ev))
