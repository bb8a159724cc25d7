"""Prefect flow ``train``: one training run on a dataset; emits ``medflow.model.trained`` at the end.

Triggered by ``medflow.dataset.updated`` (see deployments/) or by hand. Parameters are paths and
options only; the run id and directory it returns carry no PHI.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.events import emit_event

from models.training import TrainConfig, train_model

TRAINED_EVENT = "medflow.model.trained"


@flow(name="train", persist_result=False)
def train(dataset: str, labels: str, task: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train with ``TrainConfig(dataset, labels, task, **options)``; return run id, run dir and test metrics."""
    cfg = TrainConfig(dataset=dataset, labels=labels, task=task, **(options or {}))
    result = train_model(cfg)
    summary = {"run_id": result.run_id, "run_dir": str(result.run_dir), "metrics": result.metrics.get("training", {})}
    get_run_logger().info("run %s finished: %s", result.run_id, summary["metrics"])
    emit_event(
        event=TRAINED_EVENT,
        resource={"prefect.resource.id": f"medflow.run.{result.run_id}"},
        payload={"run_id": result.run_id, "run_dir": str(result.run_dir)},
    )
    return summary
