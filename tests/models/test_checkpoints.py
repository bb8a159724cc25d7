"""Checkpoints load with ``weights_only=True``: a checkpoint whose pickle would run code is refused before it runs,
by the loader, by ``load_run`` (evaluation) and by a resumed training run; medflow's own checkpoints still load."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch

from models.checkpoints import UnsafeCheckpoint, load_checkpoint, load_state_dict
from models.run import load_run
from models.training import TrainConfig, train_model

TINY = dict(frames=4, size=16, epochs=1, batch_size=8, num_workers=0, test_clips=2, backbone="cnn3d")


class _Payload:
    """Unpickling this calls ``os.system``: what a poisoned checkpoint from elsewhere would carry."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _poisoned(path: Path, marker: Path) -> Path:
    torch.save({"state_dict": {"w": torch.zeros(2)}, "hyper_parameters": _Payload(marker)}, path)
    return path


def test_a_checkpoint_that_runs_code_is_refused_unrun(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = _poisoned(tmp_path / "evil.ckpt", marker)
    with pytest.raises(UnsafeCheckpoint, match="objects other than tensors") as refused:
        load_checkpoint(path)
    assert not marker.exists()
    assert "posix" not in str(refused.value) and "system" not in str(refused.value)  # no pickle text quoted
    torch.load(path, weights_only=False)  # the payload is real: the unsafe load runs it
    assert marker.exists()


def test_plain_state_dicts_and_lightning_layouts_load(tmp_path: Path) -> None:
    weights = {"layer.weight": torch.ones(3, 2), "layer.bias": torch.zeros(3)}
    torch.save(weights, tmp_path / "plain.pt")
    torch.save(
        {"epoch": 1, "state_dict": weights, "callbacks": {"ModelCheckpoint": {"dirpath": "x"}}}, tmp_path / "l.ckpt"
    )
    for name in ("plain.pt", "l.ckpt"):
        loaded = load_state_dict(tmp_path / name)
        assert set(loaded) == set(weights) and torch.equal(loaded["layer.weight"], weights["layer.weight"])
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(UnsafeCheckpoint, match="no state dict"):
        load_state_dict(tmp_path / "list.pt")


@pytest.mark.slow
def test_runs_with_a_poisoned_checkpoint_are_refused(tiny_dataset: tuple[Path, Path], tmp_path: Path) -> None:
    dataset, labels = tiny_dataset
    result = train_model(TrainConfig(str(dataset), str(labels), "regression", target_col="ef", **TINY))
    assert load_run(result.run_dir).task == "regression"  # a real medflow checkpoint passes weights_only

    run_dir = tmp_path / result.run_dir.name
    shutil.copytree(result.run_dir, run_dir)
    marker = tmp_path / "ran"
    for name in ("best.ckpt", "last.ckpt"):
        _poisoned(run_dir / "checkpoints" / name, marker)
    with pytest.raises(UnsafeCheckpoint):
        load_run(run_dir)
    with pytest.raises(UnsafeCheckpoint):
        train_model(TrainConfig(str(dataset), str(labels), "regression", target_col="ef", resume=str(run_dir), **TINY))
    assert not marker.exists()
