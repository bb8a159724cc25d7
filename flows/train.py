"""Prefect flow ``train``: one training run on a dataset; emits ``medflow.model.trained`` at the end.

Triggered by ``medflow.dataset.updated`` (see deployments/) or by hand. The dataset, the labels file and any
``weights`` / ``resume`` option are location names (:mod:`tasks.locations`), resolved here; the run directory is
registered as a ``run-…`` handle, which the result and the event carry (with the opaque run id), never a path.
A run on several devices trains in torchrun ranks of ``models.rank`` (:mod:`models.launch`); this flow run stays
one process, so the event is emitted once.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from prefect import flow, get_run_logger
from prefect.events import emit_event

from flows.redact import redacted_errors
from models.training import TrainConfig, train_model
from tasks.errors import ConfigError
from tasks.locations import LocationKind, LocationName, Locations

TRAINED_EVENT = "medflow.model.trained"
#: TrainConfig options that name a place: their values are location names of these kinds.
PLACE_OPTIONS = {"weights": LocationKind.WEIGHTS, "resume": LocationKind.RUN}
_FIXED = {"dataset", "labels", "task"}


def resolve_options(locations: Locations, options: dict[str, Any]) -> dict[str, Any]:
    """``options`` with place options resolved to paths; unknown options refused (names only in the message)."""
    known = {f.name for f in dataclasses.fields(TrainConfig)} - _FIXED
    unknown = sorted(set(options) - known)
    if unknown:
        raise ConfigError(f"unknown training options: {', '.join(unknown)}")
    resolved = dict(options)
    for option, kind in PLACE_OPTIONS.items():
        if resolved.get(option):
            resolved[option] = str(locations.path(kind, resolved[option]))
    return resolved


@flow(name="train", persist_result=False)
def train(
    dataset: LocationName, labels: LocationName, task: str, options: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Train with ``TrainConfig(dataset, labels, task, **options)``; return run id, run handle and test metrics."""
    with redacted_errors("train"):
        locations = Locations.from_settings()
        cfg = TrainConfig(
            dataset=str(locations.path(LocationKind.DATASET, dataset)),
            labels=str(locations.path(LocationKind.LABELS, labels)),
            task=task,
            **resolve_options(locations, options or {}),
        )
        result = train_model(cfg)
        run = locations.register(LocationKind.RUN, result.run_dir)
    summary = {
        "run_id": result.run_id,
        "run_dir": run,
        "dataset": dataset,
        "metrics": result.metrics.get("training", {}),
    }
    get_run_logger().info("run %s finished: %s", result.run_id, summary["metrics"])
    emit_event(
        event=TRAINED_EVENT,
        resource={"prefect.resource.id": f"medflow.run.{result.run_id}"},
        payload={"run_id": result.run_id, "run_dir": run, "dataset": dataset},
    )
    return summary
