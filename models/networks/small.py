"""Small CNNs: a 3D CNN for volumes (and CPU-sized video runs) and its 2D twin for the frame-wise baseline."""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import resnet18


def _norm3d(kind: str, channels: int) -> nn.Module:
    return nn.GroupNorm(min(8, channels), channels) if kind == "group" else nn.BatchNorm3d(channels)


def _block3d(cin: int, cout: int, stride: tuple[int, int, int], norm: str = "batch") -> nn.Sequential:
    return nn.Sequential(
        nn.Conv3d(cin, cout, 3, stride=stride, padding=1, bias=False),
        _norm3d(norm, cout),
        nn.ReLU(inplace=True),
        nn.Conv3d(cout, cout, 3, padding=1, bias=False),
        _norm3d(norm, cout),
        nn.ReLU(inplace=True),
    )


def _block2d(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
        nn.Conv2d(cout, cout, 3, padding=1, bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(inplace=True),
    )


class Small3DCNN(nn.Module):
    """Four 3D conv blocks (stride 2 in space, and in time after the first), global average pool.

    ``norm="group"``: GroupNorm instead of BatchNorm, which normalises each clip by itself; for federated training,
    where a batch holds one site only and batch statistics would remove what differs between sites."""

    def __init__(self, in_channels: int = 1, widths: tuple[int, ...] = (16, 32, 64, 128), norm: str = "batch"):
        super().__init__()
        layers, cin = [], in_channels
        for i, w in enumerate(widths):
            layers.append(_block3d(cin, w, (1 if i == 0 else 2, 2, 2), norm))
            cin = w
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool3d(1), nn.Flatten())
        self.out_features = cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


class Small2DCNN(nn.Module):
    """The 2D twin of ``Small3DCNN`` (same widths and strides in space), for single frames."""

    def __init__(self, in_channels: int = 1, widths: tuple[int, ...] = (16, 32, 64, 128)):
        super().__init__()
        layers, cin = [], in_channels
        for w in widths:
            layers.append(_block2d(cin, w, 2))
            cin = w
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.out_features = cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


class ResNet18Features(nn.Module):
    """torchvision resnet18 (random init) without its classifier; grey input repeated to RGB."""

    def __init__(self) -> None:
        super().__init__()
        net = resnet18(weights=None)
        net.fc = nn.Identity()
        self.net = net
        self.out_features = 512

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return self.net(x)


class FrameWise(nn.Module):
    """Apply a 2D network to every frame independently and average the features over time.

    This is the baseline that cannot see motion except through the spread of per-frame features.
    """

    def __init__(self, net2d: nn.Module):
        super().__init__()
        self.net2d = net2d
        self.out_features = net2d.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, t, h, w = x.shape
        frames = x.permute(0, 2, 1, 3, 4).reshape(n * t, c, h, w)
        return self.net2d(frames).view(n, t, -1).mean(dim=1)
