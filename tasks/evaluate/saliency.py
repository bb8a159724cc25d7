"""Saliency maps (Captum integrated gradients) and the model-parameter randomisation test (Adebayo et al. 2018).

A saliency method that explains *the model* must change when the model's learned weights are replaced
by random ones. Following the paper's cascading randomisation, the layers are re-initialised from the top (output)
layer down, in up to ``SANITY_STAGES`` cumulative groups (so the cost does not grow with depth), and after
each step the maps are compared with the trained model's by
Spearman rank correlation of the absolute attributions and by SSIM. A map that stays similar by *either*
measure once the whole network is random reflects the input (edges, bright structures), not what the model
learned, and is flagged.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from captum.attr import InputXGradient, IntegratedGradients
from scipy import stats
from skimage.metrics import structural_similarity
from torch import Tensor, nn

SANITY_STAGES = 4
"""Cumulative randomisation stages of :func:`sanity_check` (output layers first; the last leaves none trained)."""

Scorer = Callable[[nn.Module, Tensor], Tensor]  # (model, model input) -> (N,) scores
Attribution = Callable[[nn.Module, Scorer, Tensor, Tensor | None], Tensor]  # -> attributions shaped like inputs


@dataclass(frozen=True)
class CascadeStep:
    """Similarity to the trained maps once every layer from the top down to ``layer`` is random."""

    layer: str
    spearman: float  # median over clips
    ssim: float


@dataclass(frozen=True)
class SanityResult:
    """Maps of the trained and the fully randomised model, their similarity, the cascade, and the verdict."""

    trained: np.ndarray  # (N, H, W) absolute attribution summed over channels and time, scaled to [0, 1]
    randomised: np.ndarray  # (N, H, W), every layer re-initialised
    spearman: np.ndarray  # (N,) trained vs fully randomised
    ssim: np.ndarray  # (N,)
    threshold: float
    cascade: tuple[CascadeStep, ...] = ()  # top layer first; the last step is the fully randomised model

    @property
    def unreliable(self) -> bool:
        """True when the maps stay similar after randomisation by either measure (median over clips).

        Either suffices (Adebayo et al. 2018): a rank correlation near 1 with a random network means the
        map ranks pixels as the input does, whatever SSIM says, and a high SSIM means the same structure.
        """
        rho, ssim = _median(self.spearman), _median(self.ssim)
        return bool(rho >= self.threshold or (np.isfinite(ssim) and ssim >= self.threshold))


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


def gradient_x_input(model: nn.Module, score: Scorer, inputs: Tensor, baseline: Tensor | None = None) -> Tensor:
    """Gradient × input (Captum ``InputXGradient``); ``baseline`` is ignored."""
    model.eval()
    with torch.enable_grad():
        return InputXGradient(lambda x: score(model, x)).attribute(inputs.detach().requires_grad_(True)).detach()


def layers_top_down(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Modules that own parameters, in reverse registration order (output layer first)."""
    owners = [(n or "model", m) for n, m in model.named_modules() if any(True for _ in m.parameters(recurse=False))]
    return owners[::-1]


def randomise_layer(module: nn.Module) -> None:
    """Re-initialise one module's own parameters (``reset_parameters`` where defined, else N(0, 0.02))."""
    if hasattr(module, "reset_parameters") and callable(module.reset_parameters):
        module.reset_parameters()
    else:
        for p in module.parameters(recurse=False):
            nn.init.normal_(p, std=0.02)


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
    steps: int = 16, seed: int = 0, method: Attribution | None = None, batch_size: int = 4,
    on_clip: Callable[[int], None] | None = None, stages: int = SANITY_STAGES,
) -> SanityResult:  # fmt: skip
    """Cascading model-parameter randomisation: maps of the trained model vs copies randomised top layer down.

    ``method(model, score, inputs, baseline)`` gives attributions shaped like ``inputs``; default integrated
    gradients with ``steps`` steps in batches of ``batch_size`` (``on_clip`` is told the steps of each clip, for
    progress). The layers, output first, are randomised in at most ``stages`` cumulative groups, so the cost is
    ``stages + 1`` attribution passes whatever the depth of the network; the last group leaves nothing trained.
    """
    attribute = method or (lambda m, s, x, b: integrated_gradients(m, s, x, b, steps, batch_size, on_clip))
    trained = spatial_map(attribute(model, score, inputs, baseline))
    clone = copy.deepcopy(model).eval()
    cascade: list[CascadeStep] = []
    randomised, rho, ssim = trained, np.ones(len(trained)), np.ones(len(trained))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for group in _groups(layers_top_down(clone), stages):
            for _, module in group:
                randomise_layer(module)
            randomised = spatial_map(attribute(clone, score, inputs, baseline))
            rho, ssim = map_similarity(trained, randomised)
            cascade.append(CascadeStep(group[-1][0], _median(rho), _median(ssim)))
    return SanityResult(trained, randomised, rho, ssim, threshold, tuple(cascade))


def sanity_stages(model: nn.Module, stages: int = SANITY_STAGES) -> int:
    """How many randomisation stages :func:`sanity_check` runs on ``model`` (fewer for shallow models)."""
    return len(_groups(layers_top_down(model), stages))


def _groups(layers: list, stages: int) -> list[list]:
    """``layers`` cut into at most ``stages`` contiguous, non-empty groups (in order)."""
    n = max(1, min(stages, len(layers)))
    bounds = np.linspace(0, len(layers), n + 1).round().astype(int)
    return [layers[a:b] for a, b in itertools.pairwise(bounds) if b > a]


def _median(x: np.ndarray) -> float:
    return float(np.nanmedian(x)) if np.isfinite(x).any() else float("nan")
