"""Late fusion: backbone features and clinical covariates concatenated into the last fully connected layers."""

from __future__ import annotations

import torch
from torch import nn


class FusionHead(nn.Module):
    """``[features, tabular] -> Linear -> ReLU -> Dropout -> Linear(out_features)``."""

    def __init__(self, in_features: int, out_features: int, n_tabular: int = 0, hidden: int = 64, dropout: float = 0.2):
        super().__init__()
        self.n_tabular = n_tabular
        self.mlp = nn.Sequential(
            nn.Linear(in_features + n_tabular, hidden),
            nn.ReLU(inplace=True),
            nn.Dropout(dropout),
            nn.Linear(hidden, out_features),
        )

    def forward(self, features: torch.Tensor, tabular: torch.Tensor | None = None) -> torch.Tensor:
        if self.n_tabular:
            if tabular is None or tabular.shape != (features.shape[0], self.n_tabular):
                got = None if tabular is None else tuple(tabular.shape)
                raise ValueError(f"tabular: expected shape (N, {self.n_tabular}), got {got}")
            features = torch.cat([features, tabular.to(features.dtype)], dim=1)
        return self.mlp(features)
