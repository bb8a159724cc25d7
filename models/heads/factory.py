"""Objectives by name: ``build_objective`` for a new run, ``objective_from_state`` for a saved one.

Kept apart from the objective classes so that ``survival`` (which subclasses ``Objective``) and the
factory that chooses between all of them import in one direction only.
"""

from __future__ import annotations

from typing import Any

from models.heads.objectives import EvidentialObjective, Objective, RegressionObjective, SoftmaxObjective
from models.heads.survival import SURVIVAL_HEADS, SurvivalObjective


def build_objective(task: str, head: str | None = None, **options: Any) -> Objective:
    """Objective for ``task`` (survival | classification | regression) and ``head``."""
    if task == "regression":
        return RegressionObjective()
    if task == "classification":
        head = head or "softmax"
        if head == "softmax":
            return SoftmaxObjective()
        if head == "evidential":
            return EvidentialObjective()
        raise ValueError(f"unknown classification head {head!r}; choose softmax or evidential")
    if task == "survival":
        head = head or "coxph"
        if head not in SURVIVAL_HEADS:
            raise ValueError(f"unknown survival head {head!r}; choose one of {', '.join(SURVIVAL_HEADS)}")
        return SurvivalObjective(head, **options)
    raise ValueError(f"unknown task {task!r}; choose survival, classification or regression")


def objective_from_state(state: dict[str, Any]) -> Objective:
    """Rebuild a fitted objective from ``Objective.state()``."""
    task, head = state["task"], state["head"]
    if task == "regression":
        return RegressionObjective(state["mean"], state["std"])
    if task == "classification":
        return (EvidentialObjective if head == "evidential" else SoftmaxObjective)(state["classes"])
    return SurvivalObjective.from_state(state)
