"""Read clips from the Zarr training views (or volumes) for Lightning.

Workers return **uint8** clips; conversion to float, augmentation and normalisation happen on the
accelerator (``models.module.ClinicalModel.on_after_batch_transfer``), so host→device traffic is a
quarter of float32 and the CPU does no per-pixel arithmetic. Training draws one random clip of
``frames`` frames (every ``stride``-th frame of the view, which is at the dataset's ``view_fps``);
validation takes one clip from the start; test takes ``test_clips`` evenly spaced clips per instance,
whose outputs the model averages.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
import zarr
from torch.utils.data import DataLoader, Dataset

from models.heads.objectives import Objective
from models.table import STORE, TabularScaler


@dataclass(frozen=True)
class ClipSpec:
    """How clips are cut from the stored arrays."""

    frames: int = 16
    stride: int = 1
    kind: str = "video"
    volume_shape: tuple[int, int, int] = (16, 64, 64)


def clip_starts(length: int, span: int, count: int) -> np.ndarray:
    """``count`` evenly spaced start indices of a ``span``-long window in ``length`` frames."""
    return np.linspace(0, max(length - span, 0), count).round().astype(int)


def cut_clip(video: np.ndarray, start: int, spec: ClipSpec) -> np.ndarray:
    """Frames ``start, start+stride, …`` (``spec.frames`` of them), zero-padded at the end if the video is short."""
    clip = video[start : start + (spec.frames - 1) * spec.stride + 1 : spec.stride]
    if clip.shape[0] < spec.frames:
        pad = np.zeros((spec.frames - clip.shape[0], *clip.shape[1:]), dtype=clip.dtype)
        clip = np.concatenate([clip, pad])
    return clip


def volume_to_uint8(vol: np.ndarray, intensity: dict | None, shape: tuple[int, int, int]) -> np.ndarray:
    """Window an int16 volume to 8 bits (attrs ``intensity``: window_center/width, or min/max) and resize."""
    v = torch.from_numpy(vol.astype(np.float32))
    if intensity and "window_center" in intensity:
        lo = intensity["window_center"] - intensity["window_width"] / 2
        hi = intensity["window_center"] + intensity["window_width"] / 2
    elif intensity and "min" in intensity:
        lo, hi = intensity["min"], intensity["max"]
    else:
        lo, hi = float(v.quantile(0.005)) if v.numel() < 2**24 else float(v.min()), float(v.max())
    v = ((v - lo) / max(hi - lo, 1e-6)).clamp(0, 1) * 255
    v = F.interpolate(v[None, None], size=shape, mode="trilinear", align_corners=False)[0, 0]
    return v.round().to(torch.uint8).numpy()


def worker_init(_: int) -> None:
    """DataLoader worker start: one zarr I/O thread per worker (the default pool per process oversubscribes cores);
    freed chunk buffers stay mapped for the next clip (:mod:`tasks.store.allocator`)."""
    from tasks.store.allocator import keep_freed_memory

    zarr.config.set({"threading.max_workers": 1})
    keep_freed_memory()


class ClipDataset(Dataset):
    """One item per instance: ``video`` uint8 (T,H,W) or (K,T,H,W), ``tabular``, ``group``, ``index`` and targets."""

    def __init__(self, store: Path, keys: list[str], targets: dict[str, np.ndarray], tabular: np.ndarray,
                 groups: np.ndarray, spec: ClipSpec, mode: str = "random", clips: int = 1):  # fmt: skip
        self.store, self.keys, self.targets = str(store), keys, targets
        self.tabular, self.groups, self.spec, self.mode, self.clips = tabular, groups, spec, mode, clips
        self._group: zarr.Group | None = None
        self._arrays: dict[str, zarr.Array] = {}  # open handles, per worker (metadata read once)
        self._pid = -1

    def __len__(self) -> int:
        return len(self.keys)

    def _array(self, key: str) -> zarr.Array:
        if self._group is None or self._pid != os.getpid():  # handles are per worker process
            self._group = zarr.open_group(self.store, mode="r")
            self._arrays, self._pid = {}, os.getpid()
        if key not in self._arrays:
            self._arrays[key] = self._group[key]
        return self._arrays[key]

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_group": None, "_arrays": {}, "_pid": -1}

    def read(self, index: int) -> np.ndarray:
        arr = self._array(self.keys[index])
        spec = self.spec
        if spec.kind == "volume":
            vol = volume_to_uint8(arr[...], dict(arr.attrs).get("intensity"), spec.volume_shape)
            return vol[None] if self.mode == "multi" else vol
        length, span = arr.shape[0], (spec.frames - 1) * spec.stride + 1
        if self.mode == "random":
            start = int(torch.randint(0, max(length - span, 0) + 1, ()).item())
            return cut_clip(arr[start : start + span], 0, spec)
        if self.mode == "center":
            start = int(clip_starts(length, span, 3)[1])
            return cut_clip(arr[start : start + span], 0, spec)
        video = arr[...]
        return np.stack([cut_clip(video, s, spec) for s in clip_starts(length, span, self.clips)])

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = {
            "video": torch.from_numpy(np.ascontiguousarray(self.read(index))),
            "tabular": torch.from_numpy(self.tabular[index]),
            "group": torch.tensor(self.groups[index], dtype=torch.long),
            "index": torch.tensor(index, dtype=torch.long),
        }
        for name, values in self.targets.items():
            item[name] = torch.as_tensor(values[index])
        return item


class ClipDataModule(pl.LightningDataModule):
    """Datasets per split from the training table (``models.table``); heavy reads happen in workers."""

    def __init__(self, dataset: Path, table: pd.DataFrame, objective: Objective, scaler: TabularScaler,
                 group_col: str | None, group_categories: list[str], spec: ClipSpec, batch_size: int = 8,
                 num_workers: int = 0, test_clips: int = 4, pin_memory: bool | None = None):  # fmt: skip
        super().__init__()
        self.dataset, self.table, self.objective, self.scaler = Path(dataset), table, objective, scaler
        self.group_col, self.group_categories, self.spec = group_col, group_categories, spec
        self.batch_size, self.num_workers, self.test_clips = batch_size, num_workers, test_clips
        self.pin_memory = torch.cuda.is_available() if pin_memory is None else pin_memory
        self.datasets: dict[str, ClipDataset] = {}

    def rows(self, split: str) -> pd.DataFrame:
        return self.table[self.table["split"] == split].reset_index(drop=True)

    def make_dataset(self, split: str, mode: str) -> ClipDataset:
        rows = self.rows(split)
        if self.group_col:
            index = {c: i for i, c in enumerate(self.group_categories)}
            groups = rows[self.group_col].astype(str).map(index).fillna(-1).to_numpy(dtype=np.int64)
        else:
            groups = np.zeros(len(rows), dtype=np.int64)
        return ClipDataset(self.dataset / STORE, rows["array_key"].tolist(), self.objective.encode(rows),
                           self.scaler.transform(rows), groups, self.spec, mode, self.test_clips)  # fmt: skip

    def setup(self, stage: str | None = None) -> None:
        if not self.datasets:
            self.datasets = {
                "train": self.make_dataset("train", "random"),
                "val": self.make_dataset("val", "center"),
                "test": self.make_dataset("test", "multi"),
                "train_eval": self.make_dataset("train", "center"),
            }

    def _loader(self, name: str, shuffle: bool = False) -> DataLoader:
        ds = self.datasets[name]
        trainer = getattr(self, "trainer", None)
        per_rank = len(ds) // max(trainer.world_size if trainer is not None else 1, 1)  # DDP shards the dataset
        return DataLoader(
            ds,
            batch_size=self.batch_size if name != "test" else max(1, self.batch_size // max(self.test_clips, 1)),
            shuffle=shuffle,
            drop_last=shuffle and per_rank > self.batch_size,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0 and name in ("train", "val"),
            worker_init_fn=worker_init if self.num_workers > 0 else None,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")

    def train_eval_dataloader(self) -> DataLoader:
        """Training split, one fixed clip each, in order (Cox baseline hazard, calibration)."""
        return self._loader("train_eval")
