"""Task objectives: what the head's outputs mean. Each one fits its label encoding on the training split,
encodes labels into numeric batch targets, computes the loss, a per-clip score, and prediction columns.
Their fitted state is plain data (saved in ``config.yaml``) so a run can be rebuilt without pickles.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch.nn.functional as F
from torch import Tensor, nn

from models.losses import EvidentialLoss, evidential_uncertainty


class Objective(nn.Module):
    """Base class. Subclasses set ``task``, ``head`` and implement the hooks below."""

    task: ClassVar[str] = ""
    head: ClassVar[str] = ""

    def fit(self, labels: pd.DataFrame) -> None:
        """Learn the label encoding from the training rows (``target`` or ``duration``/``event`` columns)."""

    def encode(self, labels: pd.DataFrame) -> dict[str, np.ndarray]:
        """Numeric per-row targets that travel with each clip in the batch."""
        raise NotImplementedError

    @property
    def out_features(self) -> int:
        raise NotImplementedError

    def loss(self, out: Tensor, batch: dict[str, Tensor]) -> Tensor:
        raise NotImplementedError

    def score(self, out: Tensor) -> Tensor:
        """One scalar per clip: risk, predicted-class probability or prediction."""
        raise NotImplementedError

    def fairness_values(self, out: Tensor) -> Tensor:
        """(N, K) differentiable quantities whose group means a fairness penalty equalises."""
        return self.score(out).view(-1, 1)

    def fairness_label(self, batch: dict[str, Tensor]) -> Tensor:
        """(N,) integer outcome that equalized odds conditions on."""
        raise NotImplementedError

    def columns(self, out: Tensor) -> dict[str, np.ndarray]:
        """Prediction columns for ``predictions.parquet`` (label columns are added by the caller)."""
        raise NotImplementedError

    def state(self) -> dict[str, Any]:
        return {"task": self.task, "head": self.head}


class RegressionObjective(Objective):
    """MSE on the standardised target; predictions are returned in the original units."""

    task = "regression"
    head = "regression"

    def __init__(self, mean: float = 0.0, std: float = 1.0):
        super().__init__()
        self.mean, self.std = mean, std

    def fit(self, labels: pd.DataFrame) -> None:
        y = labels["target"].astype(float)
        self.mean, self.std = float(y.mean()), float(y.std(ddof=0) or 1.0)

    def encode(self, labels: pd.DataFrame) -> dict[str, np.ndarray]:
        y = labels["target"].to_numpy(dtype=np.float32)
        return {"target": ((y - self.mean) / self.std).astype(np.float32)}

    @property
    def out_features(self) -> int:
        return 1

    def loss(self, out: Tensor, batch: dict[str, Tensor]) -> Tensor:
        return F.mse_loss(out.view(-1).float(), batch["target"].float())

    def score(self, out: Tensor) -> Tensor:
        return out.view(-1).float() * self.std + self.mean

    def fairness_values(self, out: Tensor) -> Tensor:
        return out.view(-1, 1).float()  # standardised units, so λ means the same for any target

    def fairness_label(self, batch: dict[str, Tensor]) -> Tensor:
        return (batch["target"] > 0).long()  # above / below the training mean

    def columns(self, out: Tensor) -> dict[str, np.ndarray]:
        return {"prediction": self.score(out).cpu().numpy()}

    def state(self) -> dict[str, Any]:
        return {**super().state(), "mean": self.mean, "std": self.std}


class SoftmaxObjective(Objective):
    """Cross-entropy over ``classes`` (sorted label values of the training split)."""

    task = "classification"
    head = "softmax"

    def __init__(self, classes: list[str] | None = None):
        super().__init__()
        self.classes = list(classes or [])

    def fit(self, labels: pd.DataFrame) -> None:
        self.classes = sorted(labels["target"].astype(str).unique().tolist())
        if len(self.classes) < 2:
            raise ValueError("classification needs at least two classes in the training split")

    def encode(self, labels: pd.DataFrame) -> dict[str, np.ndarray]:
        index = {c: i for i, c in enumerate(self.classes)}
        values = labels["target"].astype(str)
        unknown = set(values) - set(index)
        if unknown:
            raise ValueError(f"{len(unknown)} label value(s) not seen in the training split")
        return {"target": values.map(index).to_numpy(dtype=np.int64)}

    @property
    def out_features(self) -> int:
        return len(self.classes)

    def loss(self, out: Tensor, batch: dict[str, Tensor]) -> Tensor:
        return F.cross_entropy(out.float(), batch["target"].long())

    def probabilities(self, out: Tensor) -> Tensor:
        return out.float().softmax(dim=1)

    def score(self, out: Tensor) -> Tensor:
        p = self.probabilities(out)
        return p[:, -1] if p.shape[1] == 2 else p.max(dim=1).values  # binary: P(positive class)

    def fairness_values(self, out: Tensor) -> Tensor:
        return self.probabilities(out)

    def fairness_label(self, batch: dict[str, Tensor]) -> Tensor:
        return batch["target"].long()

    def columns(self, out: Tensor) -> dict[str, np.ndarray]:
        p = self.probabilities(out).cpu().numpy()
        return {f"prob_{c}": p[:, i] for i, c in enumerate(self.classes)}

    def state(self) -> dict[str, Any]:
        return {**super().state(), "classes": self.classes}


class EvidentialObjective(SoftmaxObjective):
    """Sensoy et al. (2018): softplus evidence, Dirichlet α = e + 1, MSE loss + annealed KL, u = K / S."""

    head = "evidential"

    def __init__(self, classes: list[str] | None = None):
        super().__init__(classes)
        self.criterion = EvidentialLoss()

    def evidence(self, out: Tensor) -> Tensor:
        # softplus, not ReLU: ReLU evidence leaves "dead" classes that never produce evidence
        return F.softplus(out.float())

    def loss(self, out: Tensor, batch: dict[str, Tensor]) -> Tensor:
        return self.criterion(self.evidence(out), batch["target"].long())

    def probabilities(self, out: Tensor) -> Tensor:
        alpha = self.evidence(out) + 1.0
        return alpha / alpha.sum(dim=1, keepdim=True)

    def columns(self, out: Tensor) -> dict[str, np.ndarray]:
        cols = super().columns(out)
        cols["uncertainty"] = evidential_uncertainty(self.evidence(out)).cpu().numpy()
        return cols
