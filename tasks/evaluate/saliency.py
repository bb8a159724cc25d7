"""Saliency maps (Captum integrated gradients) and the model-parameter randomisation test (Adebayo et al. 2018).

A saliency method that explains *the model* must change when the model's learned weights are replaced
by random ones. We compute maps for the trained model and for a copy with every parameter
re-initialised, and compare them with Spearman rank correlation and SSIM of the absolute maps; maps that
stay similar reflect the input (edges, bright structures), not what the model learned, and are flagged.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from captum.attr import IntegratedGradients
from scipy import stats
from skimage.metrics import structural_similarity
from torch import Tensor, nn

Scorer = Callable[[nn.Module, Tensor], Tensor]  # (model, model input) -> (N,) scores


@dataclass(frozen=True)
class SanityResult:
    """Maps of the trained and the randomised model, their similarity, and the verdict."""

    trained: np.ndarray  # (N, H, W) absolute attribution summed over channels and time, scaled to [0, 1]
    randomised: np.ndarray  # (N, H, W)
    spearman: np.ndarray  # (N,)
    ssim: np.ndarray  # (N,)
    threshold: float

    @property
    def unreliable(self) -> bool:
        """True when the maps barely change after randomisation: both median similarities reach the threshold.

        Both must agree: SSIM alone stays moderately high for any map that follows the input's bright
        structures (Adebayo et al., Fig. 4), and rank correlation alone is noisy for small maps.
        """
        return bool(np.nanmedian(self.spearman) >= self.threshold and np.nanmedian(self.ssim) >= self.threshold)


def integrated_gradients(
    model: nn.Module, score: Scorer, inputs: Tensor, baseline: Tensor | None = None, steps: int = 16,
    batch_size: int = 4, on_clip: Callable[[int], None] | None = None,
) -> Tensor:  # fmt: skip
    """Integrated gradients of each input's score with respect to the input (same shape as ``inputs``).

    One input at a time, ``batch_size`` integration steps per backward pass, so memory is that of one batch
    whatever the number of inputs; ``on_clip(steps)`` after each input.
    """
    model.eval()
    ig = IntegratedGradients(lambda x: score(model, x))
    maps = []
    for i in range(len(inputs)):
        one = inputs[i : i + 1].detach()
        base = torch.zeros_like(one) if baseline is None else baseline.expand_as(one)
        with torch.enable_grad():
            maps.append(ig.attribute(one.requires_grad_(True), baselines=base, n_steps=steps,
                                     internal_batch_size=max(1, batch_size)).detach())  # fmt: skip
        if on_clip is not None:
            on_clip(steps)
    return torch.cat(maps) if maps else torch.zeros_like(inputs)


def spatial_map(attribution: Tensor) -> np.ndarray:
    """(N, C, T, H, W) or (N, C, H, W) attribution → (N, H, W) absolute map scaled to [0, 1] per sample."""
    a = attribution.detach().abs().float()
    while a.dim() > 3:
        a = a.sum(dim=1)
    a = a.cpu().numpy()
    peak = a.reshape(len(a), -1).max(axis=1)
    return a / np.where(peak > 0, peak, 1.0)[:, None, None]


def randomised_copy(model: nn.Module, seed: int = 0) -> nn.Module:
    """A deep copy with every parameter re-initialised (``reset_parameters`` where defined, else N(0, 0.02))."""
    clone = copy.deepcopy(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for module in clone.modules():
            if hasattr(module, "reset_parameters") and callable(module.reset_parameters):
                module.reset_parameters()
            else:
                for p in module.parameters(recurse=False):
                    nn.init.normal_(p, std=0.02)
    return clone.eval()


def map_similarity(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Spearman rank correlation and SSIM between paired (N, H, W) maps in [0, 1]."""
    rho, ssim = [], []
    for x, y in zip(a, b, strict=True):
        if np.ptp(x) == 0 or np.ptp(y) == 0:
            rho.append(1.0 if np.array_equal(x, y) else 0.0)
        else:
            rho.append(float(stats.spearmanr(x.ravel(), y.ravel()).statistic))
        win = min(7, *x.shape) // 2 * 2 + 1 if min(x.shape) >= 3 else 3
        ssim.append(
            float(structural_similarity(x, y, data_range=1.0, win_size=win)) if min(x.shape) >= 3 else float("nan")
        )
    return np.array(rho), np.array(ssim)


def sanity_check(
    model: nn.Module, score: Scorer, inputs: Tensor, baseline: Tensor | None = None, threshold: float = 0.5,
    steps: int = 16, seed: int = 0, batch_size: int = 4, on_clip: Callable[[int], None] | None = None,
) -> SanityResult:  # fmt: skip
    """Integrated-gradient maps of the trained and a randomised model, compared (model-parameter randomisation)."""
    trained = spatial_map(integrated_gradients(model, score, inputs, baseline, steps, batch_size, on_clip))
    random_model = randomised_copy(model, seed)
    randomised = spatial_map(integrated_gradients(random_model, score, inputs, baseline, steps, batch_size, on_clip))
    rho, ssim = map_similarity(trained, randomised)
    return SanityResult(trained, randomised, rho, ssim, threshold)
