"""Backbones produce (N, F) features from (N, 1, T, H, W); local weights load, mismatches are refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from models.networks import Backbone, build_backbone
from models.networks.small import FrameWise, Small2DCNN
from models.networks.video import VIDEO_NETS


@pytest.mark.parametrize("name", [b.value for b in Backbone])
def test_backbone_features(name: str) -> None:
    net = build_backbone(name).eval()
    with torch.no_grad():
        out = net(torch.randn(2, 1, 4, 32, 32))
    assert out.shape == (2, net.out_features)


def test_framewise_baseline_ignores_frame_order() -> None:
    net = FrameWise(Small2DCNN()).eval()
    x = torch.randn(1, 1, 6, 32, 32)
    with torch.no_grad():
        assert torch.allclose(net(x), net(x.flip(2)), atol=1e-5)  # no motion seen, only per-frame content


def test_local_weights_load_and_mismatches_are_refused(tmp_path: Path) -> None:
    source = VIDEO_NETS["r3d_18"](weights=None)  # stands in for Kinetics weights a user downloaded
    path = tmp_path / "r3d_18.pt"
    torch.save(source.state_dict(), path)
    net = build_backbone("r3d_18", path)
    assert torch.equal(net.net.stem[0].weight, source.stem[0].weight)
    with pytest.raises(ValueError, match="does not match"):
        build_backbone("mc3_18", path)
    with pytest.raises(ValueError, match="unknown backbone"):
        build_backbone("resnet9000")
