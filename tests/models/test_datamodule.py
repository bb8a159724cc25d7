"""Clips from Zarr views: uint8 out of the loader, right length and stride, padding, test-time clips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from models.datamodule import ClipDataset, ClipSpec, clip_starts, cut_clip
from models.module import InputSpec, prepare_clips


def _dataset(root: Path, mode: str, spec: ClipSpec, clips: int = 1) -> ClipDataset:
    keys = pd.read_parquet(root / "manifest.parquet")["view_key"].tolist()[:4]
    n = len(keys)
    return ClipDataset(root / "store.zarr", keys, {"target": np.arange(n, dtype=np.float32)},
                       np.zeros((n, 2), np.float32), np.zeros(n, np.int64), spec, mode, clips)  # fmt: skip


def test_random_clip_is_uint8_with_frames_and_stride(tiny_dataset: tuple[Path, Path]) -> None:
    ds = _dataset(tiny_dataset[0], "random", ClipSpec(frames=8, stride=2))
    item = ds[1]
    assert item["video"].dtype == torch.uint8 and item["video"].shape == (8, 32, 32)
    assert item["target"].item() == 1.0 and item["tabular"].shape == (2,)


def test_multi_clip_mode_gives_k_evenly_spaced_clips(tiny_dataset: tuple[Path, Path]) -> None:
    ds = _dataset(tiny_dataset[0], "multi", ClipSpec(frames=8), clips=3)
    video = ds[0]["video"]
    assert video.shape == (3, 8, 32, 32)
    assert clip_starts(24, 8, 3).tolist() == [0, 8, 16]


def test_short_videos_are_zero_padded() -> None:
    video = np.full((5, 4, 4), 7, np.uint8)
    clip = cut_clip(video, 0, ClipSpec(frames=8, stride=1))
    assert clip.shape == (8, 4, 4) and clip[:5].min() == 7 and clip[5:].max() == 0
    assert cut_clip(np.arange(20)[:, None, None], 2, ClipSpec(frames=4, stride=3))[:, 0, 0].tolist() == [2, 5, 8, 11]


def test_device_preparation_normalises_and_augments() -> None:
    clips = torch.randint(0, 256, (2, 4, 32, 32), dtype=torch.uint8)
    spec = InputSpec(mean=0.5, std=0.25, size=16)
    x = prepare_clips(clips, spec)
    assert x.shape == (2, 1, 4, 16, 16) and x.dtype == torch.float32
    assert x.mean().item() == pytest.approx(0.0, abs=0.1)
    torch.manual_seed(0)
    assert not torch.equal(prepare_clips(clips, spec, augment=True), x)
    rgb = torch.randint(0, 256, (2, 4, 8, 8, 3), dtype=torch.uint8)
    assert prepare_clips(rgb, InputSpec()).shape == (2, 1, 4, 8, 8)


def test_random_shift_crops_each_sample_at_its_own_offset() -> None:
    from models.module import crop_at

    padded = torch.randn(3, 1, 2, 10, 12)
    offsets = torch.tensor([[0, 0], [4, 3], [2, 4]])
    got = crop_at(padded, offsets, (6, 8))
    want = torch.stack([padded[i, ..., dy : dy + 6, dx : dx + 8] for i, (dy, dx) in enumerate(offsets.tolist())])
    assert torch.equal(got, want)


def test_volumes_are_windowed_to_uint8_and_resized(tmp_path: Path) -> None:
    from tasks.synth.views import write_view_dataset

    write_view_dataset(tmp_path, patients=1, seed=0, frames=8, size=32, volumes=1)
    manifest = pd.read_parquet(tmp_path / "manifest.parquet")
    row = manifest[manifest["kind"] == "volume"].iloc[0]
    spec = ClipSpec(kind="volume", volume_shape=(8, 32, 32))
    ds = ClipDataset(tmp_path / "store.zarr", [row["zarr_key"]], {}, np.zeros((1, 0), np.float32),
                     np.zeros(1, np.int64), spec, "random")  # fmt: skip
    vol = ds[0]["video"]
    assert vol.dtype == torch.uint8 and vol.shape == (8, 32, 32)
    assert vol.min() == 0 and vol.max() > 100  # air below the CT window, soft tissue inside it
