"""Heads: the fusion MLP that maps backbone features (+ tabular covariates) to outputs, and the task objectives
that give those outputs a meaning (loss, score, prediction columns)."""

from models.heads.factory import build_objective, objective_from_state
from models.heads.fusion import FusionHead
from models.heads.objectives import (
    EvidentialObjective,
    Objective,
    RegressionObjective,
    SoftmaxObjective,
)
from models.heads.survival import SurvivalObjective

__all__ = [
    "EvidentialObjective",
    "FusionHead",
    "Objective",
    "RegressionObjective",
    "SoftmaxObjective",
    "SurvivalObjective",
    "build_objective",
    "objective_from_state",
]
