"""``load_run``: rebuild a trained model from its run directory (for evaluation, occlusion, serving)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import yaml
from torch import Tensor, nn

from models.checkpoints import load_state_dict
from models.datamodule import ClipDataset, ClipSpec
from models.heads import FusionHead, Objective, objective_from_state
from models.module import ClinicalModel, InputSpec, prepare_clips
from models.networks import build_backbone
from models.table import MANIFEST, STORE, TabularScaler


class _Network(nn.Module):
    """backbone → head; ``forward(x, tabular=None)`` with ``x`` from ``TrainedRun.prepare``."""

    def __init__(self, backbone: nn.Module, head: FusionHead):
        super().__init__()
        self.backbone, self.head = backbone, head

    def forward(self, x: Tensor, tabular: Tensor | None = None) -> Tensor:
        if tabular is None and self.head.n_tabular:
            tabular = torch.zeros(x.shape[0], self.head.n_tabular, device=x.device)  # covariates at the training mean
        return self.head(self.backbone(x), tabular)


@dataclass
class TrainedRun:
    """A run loaded for inference. ``model`` is in eval mode on the CPU; move it with ``.to(device)``."""

    run_dir: Path
    config: dict[str, Any]
    model: nn.Module
    objective: Objective
    input_spec: InputSpec
    clip: ClipSpec
    scaler: TabularScaler = field(repr=False)

    @property
    def task(self) -> str:
        return self.config["task"]

    def prepare(self, clips_uint8: Tensor) -> Tensor:
        """(N,T,H,W[,C]) uint8 → normalised float (N,1,T,H,W) model input, on the clips' device, no augmentation."""
        return prepare_clips(clips_uint8, self.input_spec, augment=False)

    def score(self, output: Tensor) -> Tensor:
        """(N,) one scalar per clip: risk (survival), predicted-class probability, or prediction."""
        return self.objective.score(output)

    def test_rows(self) -> pd.DataFrame:
        """Manifest rows of the test split that the run could use (QC pass, right kind)."""
        dataset = Path(self.config["dataset"])
        manifest = pd.read_parquet(dataset / MANIFEST)
        test = set(self.config["split"]["test"])
        key = "view_key" if self.clip.kind == "video" else "zarr_key"
        rows = manifest[manifest["patient_id"].astype(str).isin(test) & (manifest["kind"] == self.clip.kind)]
        if "qc_status" in rows:
            rows = rows[rows["qc_status"] == "pass"]
        return rows[rows[key].notna()].assign(array_key=lambda r: r[key]).reset_index(drop=True)

    def test_clips(self, limit: int) -> tuple[list[str], Tensor]:
        """Instance ids and one uint8 clip each (from the middle of the view) for up to ``limit`` test instances."""
        rows = self.test_rows().head(limit)
        n = len(rows)
        ds = ClipDataset(Path(self.config["dataset"]) / STORE, rows["array_key"].tolist(), {},
                         np.zeros((n, 0), np.float32), np.zeros(n, np.int64), self.clip, mode="center")  # fmt: skip
        if n == 0:
            return [], torch.zeros((0, self.clip.frames, 1, 1), dtype=torch.uint8)
        return rows["instance_id"].astype(str).tolist(), torch.stack([torch.from_numpy(ds.read(i)) for i in range(n)])


def load_run(run_dir: Path, checkpoint: str = "best.ckpt") -> TrainedRun:
    """Load ``run_dir/config.yaml`` and the weights of ``checkpoints/<checkpoint>`` (falls back to last.ckpt)."""
    run_dir = Path(run_dir)
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    objective = objective_from_state(config["objective"])
    scaler = TabularScaler.from_state(config["tabular"])
    backbone = build_backbone(config["backbone"])  # weights come from the checkpoint
    head = FusionHead(backbone.out_features, objective.out_features, scaler.width)
    input_spec = InputSpec(**config["input"])
    clip = ClipSpec(**{**config["clip"], "volume_shape": tuple(config["clip"]["volume_shape"])})
    module = ClinicalModel(backbone, head, objective, input_spec)
    path = run_dir / "checkpoints" / checkpoint
    if not path.exists():
        path = run_dir / "checkpoints" / "last.ckpt"
    module.load_state_dict(load_state_dict(path))
    network = _Network(module.backbone, module.head).eval()
    return TrainedRun(run_dir, config, network, objective, input_spec, clip, scaler)
