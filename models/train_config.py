"""A training run's options (``TrainConfig``, saved verbatim in ``config.yaml``), its result and its id.

Apart from ``models.training`` so the launcher (``models.launch``) and the ranks can read them without importing
the training code that starts them.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class TrainConfig:
    """Every option of a run (saved verbatim in ``config.yaml``)."""

    dataset: str
    labels: str
    task: str
    id_col: str = "patient_id"
    start_col: str | None = None
    end_col: str | None = None
    event_col: str | None = None
    target_col: str | None = None
    head: str | None = None  # survival: coxph|logistic-hazard|deephit; classification: softmax|evidential
    backbone: str = "r2plus1d_18"
    weights: str | None = None
    tabular: list[str] = field(default_factory=list)
    kind: str = "video"
    frames: int = 16
    stride: int = 1
    size: int | None = None
    epochs: int = 10
    batch_size: int = 8
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    num_workers: int = 2
    test_clips: int = 4
    num_durations: int = 20
    cox_memory: int = 0  # batches of remembered risk sets (CoxMemoryLoss); 0 = plain in-batch Cox
    kl_annealing_epochs: int = 25
    fairness_penalty: str | None = None
    group_col: str | None = None
    fairness_weight: float = 0.0
    patience: int = 10
    precision: str | None = None  # default: bf16-mixed on a GPU, 32-true on the CPU
    devices: str = "auto"
    accelerator: str = "auto"
    augment: bool = True
    resume: str | None = None  # a run directory: continue from its last.ckpt with the same split
    run_id: str | None = None
    limit_batches: float | None = None  # fraction of batches per epoch (smoke tests)
    label_fraction: float = 1.0  # train on this share of the training patients' labels (val/test unchanged)


@dataclass(frozen=True)
class TrainResult:
    run_id: str
    run_dir: Path
    metrics: dict[str, Any]


def new_run_id(cfg: TrainConfig) -> str:
    """``<UTC time>-<task>-<backbone>-<6 hex>``: opaque, sortable, no PHI."""
    return f"{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S}-{cfg.task}-{cfg.backbone}-{secrets.token_hex(3)}"
