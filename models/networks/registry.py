"""Backbones by name, the only place that maps a CLI string to a network."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from pathlib import Path

from torch import nn

from models.networks.small import FrameWise, ResNet18Features, Small2DCNN, Small3DCNN
from models.networks.video import VideoResNetFeatures, load_local_weights


class Backbone(StrEnum):
    R2PLUS1D_18 = "r2plus1d_18"
    R3D_18 = "r3d_18"
    MC3_18 = "mc3_18"
    CNN3D = "cnn3d"  # small 3D CNN: volumes, and CPU-sized video runs
    CNN3D_GN = "cnn3d_gn"  # cnn3d with GroupNorm: no batch statistics (federated sites)
    FRAMEWISE_RESNET18 = "framewise_resnet18"  # 2D resnet18 per frame, averaged
    FRAMEWISE_CNN2D = "framewise_cnn2d"  # the 2D twin of cnn3d per frame, averaged


def _simple(factory: Callable[[], nn.Module]) -> Callable[[Path | None], nn.Module]:
    def build(weights: Path | None) -> nn.Module:
        net = factory()
        if weights is not None:
            load_local_weights(net, weights)
        return net

    return build


BACKBONES: dict[Backbone, Callable[[Path | None], nn.Module]] = {
    Backbone.R2PLUS1D_18: lambda w: VideoResNetFeatures("r2plus1d_18", w),
    Backbone.R3D_18: lambda w: VideoResNetFeatures("r3d_18", w),
    Backbone.MC3_18: lambda w: VideoResNetFeatures("mc3_18", w),
    Backbone.CNN3D: _simple(Small3DCNN),
    Backbone.CNN3D_GN: _simple(lambda: Small3DCNN(norm="group")),
    Backbone.FRAMEWISE_RESNET18: _simple(lambda: FrameWise(ResNet18Features())),
    Backbone.FRAMEWISE_CNN2D: _simple(lambda: FrameWise(Small2DCNN())),
}


def build_backbone(name: str, weights: Path | None = None) -> nn.Module:
    """Return the backbone ``name`` (its ``out_features`` attribute sizes the head)."""
    try:
        key = Backbone(name)
    except ValueError:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(b.value for b in Backbone)}") from None
    return BACKBONES[key](weights)
