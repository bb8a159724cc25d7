"""torchvision video ResNets (r2plus1d_18, r3d_18, mc3_18) as feature extractors; weights only from a local file."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn
from torchvision.models import video

from models.checkpoints import load_state_dict

log = logging.getLogger(__name__)

VIDEO_NETS = {"r2plus1d_18": video.r2plus1d_18, "r3d_18": video.r3d_18, "mc3_18": video.mc3_18}


class VideoResNetFeatures(nn.Module):
    """A torchvision VideoResNet without its classifier; grey input is repeated to the 3 RGB channels."""

    def __init__(self, name: str, weights: Path | None = None):
        super().__init__()
        net = VIDEO_NETS[name](weights=None)  # never download: pretrained weights come from --weights
        if weights is not None:
            load_local_weights(net, weights)
        net.fc = nn.Identity()
        self.net = net
        self.out_features = 512

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1, -1)
        return self.net(x)


def load_local_weights(net: nn.Module, path: Path) -> None:
    """Load a state dict saved with ``torch.save`` (e.g. Kinetics-400 weights a user downloaded).

    The classifier (``fc.*``) may differ in size and is skipped; any other mismatch is an error.
    """
    state = load_state_dict(path)
    state = {k.removeprefix("net."): v for k, v in state.items() if not k.removeprefix("net.").startswith("fc.")}
    try:
        missing, unexpected = net.load_state_dict(state, strict=False)
    except RuntimeError:  # shape mismatches; the message lists every tensor, keep it as the cause only
        raise ValueError(
            "weights file does not match the backbone (tensor shapes differ); pass a state dict saved from the "
            "same torchvision architecture"
        ) from None
    missing = [k for k in missing if not k.startswith("fc.")]
    if missing or unexpected:
        raise ValueError(
            f"weights file does not match the backbone: {len(missing)} missing, {len(unexpected)} unexpected "
            "tensors; pass a state dict saved from the same torchvision architecture"
        )
    log.info("loaded %d pretrained tensors", len(state))
