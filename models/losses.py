"""Loss functions as pure functions with thin ``nn.Module`` wrappers, each checking the shapes it needs.

Survival losses come from pycox (``CoxPHLoss``, ``NLLLogistiHazardLoss``, ``DeepHitSingleLoss``); the
evidential loss is Sensoy et al. (2018), eq. 5 plus the annealed KL term of eq. 6–7; ``CoxMemoryLoss``
is this project's remedy for tiny Cox risk sets (see its docstring).
"""

from __future__ import annotations

from collections import deque

import torch
import torch.nn.functional as F
from pycox.models.loss import cox_ph_loss
from torch import Tensor, nn


def _check(name: str, tensor: Tensor, shape: tuple[int | None, ...]) -> None:
    ok = tensor.dim() == len(shape) and all(s is None or s == t for s, t in zip(shape, tensor.shape, strict=True))
    if not ok:
        want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{name}: expected shape {want}, got {tuple(tensor.shape)}")


# --- evidential classification (Sensoy, Kaplan & Kandemir 2018) -------------------------------------


def evidence_to_alpha(evidence: Tensor) -> Tensor:
    """Dirichlet parameters α = e + 1."""
    return evidence + 1.0


def kl_dirichlet_to_uniform(alpha: Tensor) -> Tensor:
    """KL[Dir(α) || Dir(1)] per sample (N,)."""
    k = alpha.shape[1]
    s = alpha.sum(dim=1, keepdim=True)
    ones = torch.ones_like(alpha)
    first = (
        torch.lgamma(s).squeeze(1)
        - torch.lgamma(alpha).sum(1)
        - torch.lgamma(torch.tensor(float(k), device=alpha.device))
    )
    second = ((alpha - ones) * (torch.digamma(alpha) - torch.digamma(s))).sum(1)
    return first + second


def evidential_mse_loss(evidence: Tensor, target: Tensor, kl_weight: float) -> Tensor:
    """Mean over the batch of Σ_j (y_j − p_j)² + p_j(1−p_j)/(S+1), plus ``kl_weight`` · KL of the misleading evidence.

    ``evidence`` (N, K) ≥ 0 (softplus of logits), ``target`` (N,) class indices.
    """
    _check("evidence", evidence, (None, None))
    _check("target", target, (evidence.shape[0],))
    alpha = evidence_to_alpha(evidence)
    s = alpha.sum(dim=1, keepdim=True)
    p = alpha / s
    y = F.one_hot(target.long(), alpha.shape[1]).to(alpha.dtype)
    err = ((y - p) ** 2).sum(1)
    var = (p * (1 - p) / (s + 1)).sum(1)
    alpha_tilde = y + (1 - y) * alpha  # remove the evidence of the true class
    kl = kl_dirichlet_to_uniform(alpha_tilde)
    return (err + var + kl_weight * kl).mean()


def evidential_uncertainty(evidence: Tensor) -> Tensor:
    """u = K / S in (0, 1]: 1 when there is no evidence at all."""
    alpha = evidence_to_alpha(evidence)
    return alpha.shape[1] / alpha.sum(dim=1)


class EvidentialLoss(nn.Module):
    """Sensoy's MSE-based evidential loss; ``kl_weight`` is set each epoch by ``KLAnnealing``."""

    def __init__(self) -> None:
        super().__init__()
        self.kl_weight = 0.0

    def forward(self, evidence: Tensor, target: Tensor) -> Tensor:
        return evidential_mse_loss(evidence, target, self.kl_weight)


# --- survival ---------------------------------------------------------------------------------------


def deephit_rank_mat(idx_durations: Tensor, events: Tensor) -> Tensor:
    """pycox's ``pair_rank_mat`` in torch: R_ij = 1 if i has an observed event before j's time."""
    di, dj = idx_durations.view(-1, 1), idx_durations.view(1, -1)
    ej = events.view(1, -1)
    mat = (di < dj) | ((di == dj) & (ej == 0))
    return (mat & (events.view(-1, 1) == 1)).float()


class CoxMemoryLoss(nn.Module):
    """Cox partial likelihood whose risk sets include the (detached) log-risks of the last ``memory`` batches.

    With a few videos per batch, a risk set holds one or two patients and the Cox gradient is noise
    (or zero: a batch without events contributes nothing). Keeping a queue of recent log-risks with
    their durations and events gives each event a risk set of ``memory × batch`` patients, the way a
    large batch would, at no extra forward passes. Gradients flow only through the current batch;
    the remembered log-risks are a few steps stale, which is the price (torchsurv's ``Momentum``
    pays a second, EMA-updated network instead). Each batch is centred, since a drifting common offset
    would otherwise decide the mixed risk sets. Measured here the training loss still rises with memory
    (see models/README.md), so training defaults to ``memory=0``: pycox's plain ``cox_ph_loss``.
    """

    def __init__(self, memory: int = 16):
        super().__init__()
        self.memory = memory
        self._bank: deque[tuple[Tensor, Tensor, Tensor]] = deque(maxlen=max(memory, 1))

    def reset(self) -> None:
        self._bank.clear()

    def forward(self, log_h: Tensor, durations: Tensor, events: Tensor) -> Tensor:
        log_h = log_h.view(-1)
        if self.memory:
            # the partial likelihood ignores a common shift, but remembered scores from earlier steps would
            # not: centre every batch so a drifting offset cannot make stale scores win or lose risk sets
            log_h = log_h - log_h.mean()
        _check("durations", durations, (log_h.shape[0],))
        _check("events", events, (log_h.shape[0],))
        if not bool(events.any()):
            loss = log_h.sum() * 0.0  # no event, no partial-likelihood term (pycox would return 0/0)
        elif not self.training or self.memory == 0 or not self._bank:
            loss = cox_ph_loss(log_h, durations, events.float())
        else:
            old_h, old_d, old_e = (torch.cat(parts) for parts in zip(*self._bank, strict=True))
            all_h = torch.cat([log_h, old_h.to(log_h.dtype)])
            all_d = torch.cat([durations, old_d])
            # remembered patients join the risk sets only; their own event terms were counted already
            all_e = torch.cat([events.float(), torch.zeros_like(old_e)])
            loss = cox_ph_loss(all_h, all_d, all_e)
        if self.training and self.memory:
            self._bank.append((log_h.detach(), durations.detach(), events.detach().float()))
        return loss
