"""Proxy tasks (rotation, jigsaw, NT-Xent) as pure functions; label fractions; pretrained-weights checks."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from models.checkpoints import check_backbone_weights
from models.networks import build_backbone
from models.pretrain.proxies import ROTATIONS, jigsaw_cells, nt_xent, permutation_set, rotate, rotation_batch
from models.table import split_patients, subsample_train
from tasks.errors import ConfigError


def test_the_ten_rotations_are_distinct_and_invertible() -> None:
    cube = torch.randn(1, 1, 4, 4, 4)
    rotated = [rotate(cube, torch.tensor([i])) for i in range(len(ROTATIONS))]
    assert len(ROTATIONS) == 10 and torch.equal(rotated[0], cube)
    assert len({tuple(r.flatten().tolist()) for r in rotated}) == 10
    for (k, dims), r in zip(ROTATIONS, rotated, strict=True):
        assert torch.equal(torch.rot90(r, -k, dims), cube)
    with pytest.raises(ValueError, match="cubes"):
        rotate(torch.randn(1, 1, 4, 8, 8), torch.tensor([1]))


def test_rotation_batch_cuts_cubes_from_clips() -> None:
    cubes, labels = rotation_batch(torch.randn(6, 1, 8, 16, 16), torch.Generator().manual_seed(0))
    assert cubes.shape == (6, 1, 8, 8, 8) and labels.shape == (6,) and int(labels.max()) < 10


def test_permutations_are_distinct_far_apart_and_start_with_the_identity() -> None:
    perms = permutation_set(16, seed=0)
    assert perms.shape == (16, 8) and perms[0].tolist() == list(range(8))
    assert all(sorted(p.tolist()) == list(range(8)) for p in perms)
    distances = (perms[:, None] != perms[None]).sum(-1) + 8 * torch.eye(16, dtype=torch.long).numpy()
    assert distances.min() >= 6  # greedy maximin over the 40,320 permutations keeps them far apart
    assert (permutation_set(16, seed=0) == perms).all()


def test_jigsaw_cells_follow_the_permutation() -> None:
    x = torch.arange(2 * 4 * 4 * 4, dtype=torch.float32).view(2, 1, 4, 4, 4)
    perms = torch.as_tensor(permutation_set(4))
    cells = jigsaw_cells(x, perms, torch.tensor([0, 2]), jitter=0.0)
    assert cells.shape == (2, 8, 1, 2, 2, 2)
    grid = [x[:, :, z : z + 2, y : y + 2, w : w + 2] for z in (0, 2) for y in (0, 2) for w in (0, 2)]
    for j in range(8):
        assert torch.equal(cells[0, j], grid[j][0])  # identity
        assert torch.equal(cells[1, j], grid[int(perms[2, j])][1])


def test_nt_xent_rewards_matching_pairs() -> None:
    z = torch.eye(8)[:4] * 5
    matched, swapped = nt_xent(z, z.clone()), nt_xent(z, z.roll(1, dims=0))
    assert matched < 0.1 < swapped
    with pytest.raises(ValueError, match="N >= 2"):
        nt_xent(torch.randn(1, 4), torch.randn(1, 4))


def test_label_fraction_keeps_validation_and_test_and_nests() -> None:
    import pandas as pd

    split = split_patients(pd.Series([f"P{i:02d}" for i in range(40)]), seed=0)
    tenth, quarter = subsample_train(split, 0.1, 0), subsample_train(split, 0.25, 0)
    assert len(tenth["train"]) == 3 and len(quarter["train"]) == 7 and subsample_train(split, 1.0, 0) == split
    assert set(tenth["train"]) < set(quarter["train"]) < set(split["train"])  # nested: 10% ⊂ 25% ⊂ all
    assert tenth["val"] == quarter["val"] == split["val"] and tenth["test"] == split["test"]
    with pytest.raises(ValueError, match="label fraction"):
        subsample_train(split, 0.0, 0)


def test_weights_pretrained_for_another_backbone_or_kind_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "backbone.pt"
    torch.save({"state_dict": build_backbone("cnn3d").state_dict(), "medflow": {"backbone": "cnn3d", "kind": "video"}},
               path)  # fmt: skip
    assert check_backbone_weights(path, "cnn3d", "video") == {"backbone": "cnn3d", "kind": "video"}
    with pytest.raises(ConfigError, match="pretrained for backbone 'cnn3d'"):
        check_backbone_weights(path, "framewise_cnn2d", "video")
    with pytest.raises(ConfigError, match="pretrained for kind 'video'"):
        check_backbone_weights(path, "cnn3d", "volume")
    torch.save(build_backbone("cnn3d").state_dict(), path)  # a plain state dict: no config to check
    assert check_backbone_weights(path, "cnn3d", "video") is None
