"""Serial occlusion tests: mask a region of the scan sector or a segment of time, see how outputs move.

Works on any ``forward(clips_uint8) -> (N,) scores`` (for a training run: prepare → model → score),
so it runs the same for a video model, a volume model, or the tiny network of a test.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

Forward = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class OcclusionResult:
    """Scores with nothing, each region, and each time segment masked."""

    baseline: np.ndarray  # (N,)
    region_scores: np.ndarray  # (grid, grid, N)
    segment_scores: np.ndarray  # (segments, N)
    box: tuple[int, int, int, int]  # sector bounding box y0, y1, x0, x1 (pixels)

    @property
    def region_delta(self) -> np.ndarray:
        """Mean absolute change of the score per masked region (grid, grid): the heat map."""
        return np.abs(self.region_scores - self.baseline).mean(axis=-1)

    @property
    def segment_delta(self) -> np.ndarray:
        """Mean absolute change of the score per masked time segment (segments,)."""
        return np.abs(self.segment_scores - self.baseline).mean(axis=-1)


def sector_box(clips: Tensor, threshold: int = 8) -> tuple[int, int, int, int]:
    """Bounding box (y0, y1, x0, x1) of pixels that are ever brighter than ``threshold``; whole frame if none."""
    frames = clips if clips.dim() == 4 else clips.float().mean(dim=-1)
    bright = (frames.amax(dim=(0, 1)) > threshold).cpu().numpy()
    h, w = bright.shape
    if not bright.any():
        return 0, h, 0, w
    ys, xs = np.flatnonzero(bright.any(axis=1)), np.flatnonzero(bright.any(axis=0))
    return int(ys[0]), int(ys[-1]) + 1, int(xs[0]), int(xs[-1]) + 1


def region_masks(box: tuple[int, int, int, int], grid: int) -> list[tuple[slice, slice]]:
    """(rows, cols) slices of the ``grid × grid`` cells of the box, row-major (2 = sector quadrants)."""
    y0, y1, x0, x1 = box
    ys = np.linspace(y0, y1, grid + 1).round().astype(int)
    xs = np.linspace(x0, x1, grid + 1).round().astype(int)
    return [(slice(ys[r], ys[r + 1]), slice(xs[c], xs[c + 1])) for r in range(grid) for c in range(grid)]


def time_segments(frames: int, segments: int) -> list[slice]:
    """``segments`` contiguous, nearly equal slices of the frame axis."""
    edges = np.linspace(0, frames, segments + 1).round().astype(int)
    return [slice(edges[i], edges[i + 1]) for i in range(segments)]


def occlusion_passes(clips: int, grid: int, segments: int) -> int:
    """Clip passes of one occlusion test: unmasked, each cell, each segment."""
    return clips * (1 + grid * grid + segments)


def occlusion_test(
    forward: Forward, clips: Tensor, grid: int = 2, segments: int = 4, batch_size: int = 8,
    on_batch: Callable[[int], None] | None = None,
) -> OcclusionResult:  # fmt: skip
    """Score every clip unmasked, with each sector cell zeroed in all frames, and with each time segment zeroed.

    Clips go through ``forward`` ``batch_size`` at a time, masked batch by batch (memory: one batch);
    ``on_batch(n)`` is told after each batch of ``n`` clips.
    """
    if clips.dtype != torch.uint8 or clips.dim() not in (4, 5):
        raise ValueError(f"clips must be uint8 (N,T,H,W[,C]); got {tuple(clips.shape)} {clips.dtype}")
    box = sector_box(clips)

    def unmasked(batch: Tensor) -> Tensor:
        return batch

    def region(rows: slice, cols: slice) -> Callable[[Tensor], Tensor]:
        def mask(batch: Tensor) -> Tensor:
            batch = batch.clone()
            batch[:, :, rows, cols] = 0
            return batch

        return mask

    def segment(seg: slice) -> Callable[[Tensor], Tensor]:
        def mask(batch: Tensor) -> Tensor:
            batch = batch.clone()
            batch[:, seg] = 0
            return batch

        return mask

    def scores(mask: Callable[[Tensor], Tensor]) -> np.ndarray:
        return batched_scores(lambda b: forward(mask(b)), clips, batch_size, on_batch)

    baseline = scores(unmasked)
    regions = [scores(region(rows, cols)) for rows, cols in region_masks(box, grid)]
    seg_scores = [scores(segment(seg)) for seg in time_segments(clips.shape[1], segments)]
    region_scores = np.stack(regions).reshape(grid, grid, -1)
    return OcclusionResult(baseline, region_scores, np.stack(seg_scores), box)


@torch.no_grad()
def batched_scores(
    forward: Forward, clips: Tensor, batch_size: int, on_batch: Callable[[int], None] | None = None
) -> np.ndarray:
    """``forward`` over ``clips`` in batches, as one float64 array; ``on_batch(n)`` after each batch."""
    parts = []
    for i in range(0, len(clips), batch_size):
        batch = clips[i : i + batch_size]
        parts.append(forward(batch).detach().float().cpu().reshape(-1))
        if on_batch is not None:
            on_batch(len(batch))
    return torch.cat(parts).numpy().astype(np.float64) if parts else np.zeros(0)
