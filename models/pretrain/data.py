"""Every stored array of a kind, two random clips each, for self-supervised pretraining (no labels read)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from models.datamodule import ClipDataset, ClipSpec
from models.table import MANIFEST, STORE


def unlabelled_rows(dataset: Path, kind: str) -> pd.DataFrame:
    """Manifest rows of ``kind`` with a stored array that passed QC: ``instance_id``, ``patient_id``, ``array_key``."""
    manifest = pd.read_parquet(Path(dataset) / MANIFEST)
    if "qc_status" in manifest:
        manifest = manifest[manifest["qc_status"].fillna("fail") == "pass"]
    key = "view_key" if kind == "video" else "zarr_key"
    manifest = manifest[(manifest["kind"] == kind) & manifest[key].notna()]
    rows = manifest[["instance_id", "patient_id"]].assign(array_key=manifest[key]).reset_index(drop=True)
    if rows.empty:
        raise ValueError(f"the dataset has no QC-passed {kind} arrays to pretrain on")
    return rows


def split_rows(rows: pd.DataFrame, val_fraction: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Training and validation rows, split by patient (seeded); validation only watches the proxy losses."""
    patients = np.array(sorted(rows["patient_id"].astype(str).unique()))
    np.random.default_rng(seed).shuffle(patients)
    n_val = round(val_fraction * len(patients)) if len(patients) >= 4 else 0
    val = set(patients[:n_val])
    is_val = rows["patient_id"].astype(str).isin(val)
    return rows[~is_val].reset_index(drop=True), rows[is_val].reset_index(drop=True)


class PairDataset(ClipDataset):
    """``video`` uint8 (2, D, H, W): two independently drawn random clips of one stored array."""

    def __init__(self, dataset: Path, keys: list[str], spec: ClipSpec):
        n = len(keys)
        super().__init__(Path(dataset) / STORE, keys, {}, np.zeros((n, 0), np.float32), np.zeros(n, np.int64), spec)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        pair = np.stack([self.read(index), self.read(index)])
        return {"video": torch.from_numpy(np.ascontiguousarray(pair)), "index": torch.tensor(index)}
