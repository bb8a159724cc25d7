"""Prefect flow ``pretrain``: self-supervised pretraining on every stored array of a dataset (no labels).

The dataset is a location name (:mod:`tasks.locations`); the backbone checkpoint is registered as a ``weights-…``
handle, which the result and the ``medflow.backbone.pretrained`` event carry (with the opaque run id), never a path.
``train(..., options={"weights": HANDLE})`` fine-tunes from it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from prefect import flow, get_run_logger
from prefect.events import emit_event

from flows.redact import redacted_errors
from models.pretrain.module import Method
from models.pretrain.run import PretrainConfig, pretrain_backbone
from tasks.errors import ConfigError
from tasks.locations import LocationKind, LocationName, Locations

PRETRAINED_EVENT = "medflow.backbone.pretrained"


def check_options(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` when every key is a PretrainConfig option (names only in the message)."""
    unknown = sorted(set(options) - ({f.name for f in dataclasses.fields(PretrainConfig)} - {"dataset"}))
    if unknown:
        raise ConfigError(f"unknown pretraining options: {', '.join(unknown)}")
    methods = options.get("methods", ["contrastive"])
    known = {m.value for m in Method}
    if not isinstance(methods, list) or not methods or not set(methods) <= known:
        raise ConfigError(f"methods must be a non-empty list of {', '.join(sorted(known))}")
    return dict(options)


@flow(name="pretrain", persist_result=False)
def pretrain(dataset: LocationName, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Pretrain with ``PretrainConfig(dataset, **options)``; return run id, weights handle and proxy metrics."""
    with redacted_errors("pretrain"):
        locations = Locations.from_settings()
        cfg = PretrainConfig(dataset=str(locations.path(LocationKind.DATASET, dataset)), **check_options(options or {}))
        result = pretrain_backbone(cfg)
        weights = locations.register(LocationKind.WEIGHTS, result.checkpoint)
    summary = {"run_id": result.run_id, "weights": weights, "dataset": dataset, "metrics": result.metrics}
    get_run_logger().info("pretraining %s finished: %s", result.run_id, result.metrics)
    emit_event(
        event=PRETRAINED_EVENT,
        resource={"prefect.resource.id": f"medflow.pretrain.{result.run_id}"},
        payload={"run_id": result.run_id, "weights": weights, "dataset": dataset},
    )
    return summary
