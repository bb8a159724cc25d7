"""Evaluation options: one frozen value built at the entry point and passed down."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any


@dataclass(frozen=True)
class EvaluationOptions:
    """What to compute and how hard to try. Defaults suit a test split of a few hundred to 10,000 rows."""

    n_resamples: int = 1000  # bootstrap resamples (by patient) for every interval
    seed: int = 0
    level: float = 0.95  # interval coverage
    horizons: tuple[float, ...] | None = None  # survival horizons in days; None = quartiles of event times
    calibration_bins: int = 10  # risk deciles for survival calibration
    risk_groups: int = 3  # Kaplan–Meier curves by tertile of predicted risk
    ece_bins: int = 15
    target_accuracy: float = 0.9  # abstain on the most uncertain cases until accuracy reaches this
    group_columns: tuple[str, ...] = ()  # extra subgroup columns besides sex, age band and group
    min_group_size: int = 10  # smaller subgroups are reported as counts only
    model_checks: bool = True  # occlusion, saliency and OOD checks when a checkpoint loads
    clips: int | None = None  # test clips the model checks use at most; None: 32 on a GPU, 8 on a CPU
    batch_size: int | None = None  # clips (or integration steps) per forward/backward; None: 16 on a GPU, 2 on a CPU
    occlusion_grid: int = 2  # sector split into grid x grid regions (2 = quadrants)
    occlusion_segments: int = 4  # time segments masked one at a time
    saliency_clips: int = 4
    saliency_steps: int = 16  # integrated-gradient steps per clip
    similarity_threshold: float = 0.5  # maps at least this similar after randomisation are unreliable

    def clip_cap(self, gpu: bool) -> int:
        """How many test clips the model checks take (a bounded sample: time and memory grow with it)."""
        return self.clips if self.clips is not None else (32 if gpu else 8)

    def check_batch(self, gpu: bool) -> int:
        """Clips per forward pass, and integration steps per backward pass (memory grows with it)."""
        return max(1, self.batch_size if self.batch_size is not None else (16 if gpu else 2))

    @classmethod
    def from_mapping(cls, values: dict[str, Any] | None) -> EvaluationOptions:
        """Options from a config section (e.g. ``evaluation:`` in a run's config.yaml); unknown keys ignored."""
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in (values or {}).items() if k in known}
        for key in ("horizons", "group_columns"):
            if kwargs.get(key) is not None:
                kwargs[key] = tuple(kwargs[key])
        return cls(**kwargs)
