"""Checks that need the model itself: occlusion, saliency sanity, and out-of-distribution uncertainty."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor, nn

from tasks.evaluate import plots
from tasks.evaluate.occlusion import batched_scores, occlusion_passes, occlusion_test
from tasks.evaluate.options import EvaluationOptions
from tasks.evaluate.progress import NO_PROGRESS, ProgressSink
from tasks.evaluate.report import Section
from tasks.evaluate.saliency import SANITY_STAGES, sanity_check, sanity_stages
from tasks.evaluate.uncertainty import ood_auroc

log = logging.getLogger(__name__)


@dataclass
class ModelAdapter:
    """How to run a model on uint8 clips: ``score(model(prepare(clips)))`` gives one scalar per clip."""

    model: nn.Module
    prepare: Callable[[Tensor], Tensor]
    score: Callable[[Tensor], Tensor]
    uncertainty: Callable[[Tensor], Tensor] | None = None  # model output -> (N,) uncertainty, classifiers only
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    def scores(self, clips: Tensor) -> Tensor:
        return self.score(self.model(self.prepare(clips.to(self.device))))

    def uncertainties(self, clips: Tensor) -> Tensor:
        assert self.uncertainty is not None
        return self.uncertainty(self.model(self.prepare(clips.to(self.device))))

    @property
    def gpu(self) -> bool:
        return self.device.type == "cuda"


@dataclass
class ModelCheckResult:
    metrics: dict[str, object]
    sections: list[Section]


def out_of_distribution_clips(clips: Tensor, seed: int = 0) -> dict[str, Tensor]:
    """Inputs the model never saw: the clips rotated 90°, corrupted by strong noise, and pure noise."""
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(clips.shape, generator=g) * 80.0
    return {
        "rotated": torch.rot90(clips, 1, dims=(2, 3)).contiguous(),
        "corrupted": (clips.float() + noise).clamp(0, 255).to(torch.uint8),
        "noise": torch.randint(0, 256, clips.shape, generator=g, dtype=torch.uint8),
    }


def check_passes(
    clips: int, options: EvaluationOptions, saliency_clips: int, ood: bool, stages: int = SANITY_STAGES
) -> int:
    """Clip passes of ``check_model`` (occlusion, integrated gradients of the trained model and of each
    randomisation stage, 4 × uncertainty for OOD)."""
    passes = occlusion_passes(clips, options.occlusion_grid, options.occlusion_segments)
    passes += (1 + stages) * saliency_clips * options.saliency_steps
    return passes + (4 * clips if ood else 0)


def check_model(
    adapter: ModelAdapter,
    clips: Tensor,
    options: EvaluationOptions,
    metric: Callable[[np.ndarray], float] | None = None,
    metric_name: str = "metric",
    progress: ProgressSink = NO_PROGRESS,
) -> ModelCheckResult:
    """Occlusion (sector regions and time segments), saliency randomisation test and, for classifiers, OOD AUROC.

    ``metric(scores)`` scores the test clips against their labels (e.g. Harrell's C of the risks); it is
    reported for each occlusion so a drop in performance, not only a change in output, is visible.
    At most ``options.clip_cap`` clips are checked (a caller passes that many, with their labels in ``metric``;
    more are refused), in batches of ``options.check_batch``: memory is one batch of activations, not the sample.
    """
    cap, batch = options.clip_cap(adapter.gpu), options.check_batch(adapter.gpu)
    if len(clips) > cap:
        raise ValueError(f"{len(clips)} clips passed to the model checks; their bound is {cap} (options.clips)")
    adapter.model.eval().to(adapter.device)
    metrics: dict[str, object] = {"model_check_clips": len(clips), "model_check_batch": batch}
    sections: list[Section] = []
    saliency_clips = min(options.saliency_clips, len(clips))
    stages = sanity_stages(adapter.model)
    total = check_passes(len(clips), options, saliency_clips, adapter.uncertainty is not None, stages)
    progress.start(f"model checks on {len(clips)} clips", total)
    with torch.no_grad():
        occ = occlusion_test(adapter.scores, clips, options.occlusion_grid, options.occlusion_segments, batch,
                             progress.advance)  # fmt: skip
    region_delta, segment_delta = occ.region_delta, occ.segment_delta
    for (r, c), v in np.ndenumerate(region_delta):
        metrics[f"occlusion_delta__region=r{r + 1}c{c + 1}"] = float(v)
    for k, v in enumerate(segment_delta):
        metrics[f"occlusion_delta__segment={k + 1}"] = float(v)
    paragraphs = [
        f"{len(clips)} test clips; sector box {occ.box}; mean |Δ score| when the region or segment is set to black."
    ]
    if metric is not None:
        base = metric(occ.baseline)
        metrics[f"occlusion_{metric_name}__none"] = _f(base)
        for (r, c), _ in np.ndenumerate(region_delta):
            metrics[f"occlusion_{metric_name}__region=r{r + 1}c{c + 1}"] = _f(metric(occ.region_scores[r, c]))
        for k in range(len(segment_delta)):
            metrics[f"occlusion_{metric_name}__segment={k + 1}"] = _f(metric(occ.segment_scores[k]))
        paragraphs.append(f"{metric_name} of these clips unmasked: {_fmt(base)}; per occlusion in metrics.json.")
    sections.append(Section("Occlusion", paragraphs, figures=[plots.occlusion(region_delta, segment_delta)]))

    sample = clips[:saliency_clips]
    if len(sample):
        inputs = adapter.prepare(sample.to(adapter.device))
        baseline = adapter.prepare(torch.zeros_like(sample[:1]).to(adapter.device))
        sanity = sanity_check(
            adapter.model, lambda m, x: adapter.score(m(x)), inputs, baseline, options.similarity_threshold,
            steps=options.saliency_steps, batch_size=batch, on_clip=progress.advance,
        )  # fmt: skip
        metrics["saliency_spearman"] = _f(np.nanmedian(sanity.spearman))
        metrics["saliency_ssim"] = _f(np.nanmedian(sanity.ssim))
        metrics["saliency_unreliable"] = sanity.unreliable
        for step in sanity.cascade:  # top layer first, cumulative
            metrics[f"saliency_spearman__layer={step.layer}"] = _f(step.spearman)
            metrics[f"saliency_ssim__layer={step.layer}"] = _f(step.ssim)
        frames = sample.float().mean(dim=1)
        frames = frames.mean(dim=-1) if frames.dim() == 4 else frames
        similarity = (
            f"median Spearman {_fmt(metrics['saliency_spearman'])}, SSIM {_fmt(metrics['saliency_ssim'])}, "
            f"threshold {options.similarity_threshold}; randomised from the top layer down in "
            f"{len(sanity.cascade)} cumulative stages"
        )
        message = (
            f"Maps stay similar by at least one measure when the weights are randomised ({similarity}): "
            "they do not explain this model."
            if sanity.unreliable
            else f"Maps change by both measures when the weights are randomised ({similarity}): they pass the "
            "randomisation test."
        )
        figure = plots.saliency(
            _resize_like(frames, sanity.trained), sanity.trained, sanity.randomised, sanity.spearman
        )
        sections.append(
            Section(
                "Saliency sanity check (integrated gradients)", flags=[(sanity.unreliable, message)], figures=[figure]
            )
        )

    if adapter.uncertainty is not None:
        inside = batched_scores(adapter.uncertainties, clips, batch, progress.advance)
        outside = {k: batched_scores(adapter.uncertainties, v, batch, progress.advance)
                   for k, v in out_of_distribution_clips(clips, options.seed).items()}  # fmt: skip
        metrics["auroc_ood"] = _f(ood_auroc(inside, np.concatenate(list(outside.values()))))
        for kind, u in outside.items():
            metrics[f"auroc_ood__kind={kind}"] = _f(ood_auroc(inside, u))
            metrics[f"uncertainty_mean__kind={kind}"] = float(u.mean())
        metrics["uncertainty_mean__kind=test"] = float(inside.mean())
        sections.append(Section("Out-of-distribution detection", [
            f"AUROC of the uncertainty for telling test clips from rotated, noise-corrupted and pure-noise clips: "
            f"{_fmt(metrics['auroc_ood'])}."]))  # fmt: skip
    return ModelCheckResult(metrics, sections)


def _resize_like(frames: Tensor, maps: np.ndarray) -> np.ndarray:
    h, w = maps.shape[-2:]
    if frames.shape[-2:] != (h, w):
        frames = torch.nn.functional.interpolate(frames[:, None], size=(h, w), mode="bilinear", align_corners=False)[
            :, 0
        ]
    return frames.cpu().numpy()


def _f(x: float) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


def _fmt(x: object) -> str:
    return "n/a" if x is None else f"{float(x):.3f}"
