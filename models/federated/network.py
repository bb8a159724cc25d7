"""The architecture the server holds: backbone and head by name, with the same parameter names as
:class:`models.module.ClinicalModel` (``backbone.*``, ``head.*``), so global weights load into every site's model."""

from __future__ import annotations

from torch import Tensor, nn

from models.heads import FusionHead
from models.networks import build_backbone


class GlobalNetwork(nn.Module):
    """``backbone`` (a name from :mod:`models.networks`) → :class:`FusionHead` with ``outputs`` and ``tabular``."""

    def __init__(self, backbone: str, outputs: int, tabular: int = 0):
        super().__init__()
        self.backbone = build_backbone(backbone)
        self.head = FusionHead(self.backbone.out_features, outputs, tabular)

    def forward(self, x: Tensor, tabular: Tensor | None = None) -> Tensor:
        return self.head(self.backbone(x), tabular)
