"""Prefect flow ``predict``: the champion applied to a dataset's new instances, with abstention and refusals.

Triggered by ``medflow.dataset.updated`` (or by hand; ``medflow predict``). Parameters: the dataset's location
name and the registered model's name (``<dataset location>-<task>[-<target>]``, letters, digits, ``-``). The
artifact holds counts only; predictions stay in ``DATASET/predictions/<model>-v<version>/`` (pseudonymous ids).
Inference holds a slot of the ``gpu`` concurrency limit when a GPU is present.
"""

from __future__ import annotations

import dataclasses
from contextlib import nullcontext
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.concurrency.sync import concurrency

from flows.redact import redacted_errors
from tasks.locations import LocationKind, LocationName, Locations
from tasks.predict.apply import predict_dataset
from tasks.registry.store import champion_version, client, models_of_dataset

GPU_LIMIT = "gpu"


@flow(name="predict", persist_result=False)
def predict(
    dataset: LocationName, model: LocationName | None = None, coverage: float = 0.9, clips: int = 2
) -> dict[str, Any] | list[dict[str, Any]]:
    """Score the new instances of ``dataset`` with ``model``'s champion (None: every task of the dataset with a
    champion); return and publish the counts."""
    if model is None:
        with redacted_errors("predict"):
            locations = Locations.from_settings()
            found = models_of_dataset(client(locations.state_dir), dataset)
        names = [m for m in found if champion_version(client(locations.state_dir), m) is not None]
        return [predict_model(dataset, m, coverage, clips) for m in names]
    return predict_model(dataset, model, coverage, clips)


def predict_model(dataset: str, model: str, coverage: float, clips: int) -> dict[str, Any]:
    import torch

    gpu = torch.cuda.is_available()
    with redacted_errors("predict"):
        locations = Locations.from_settings()
        path = locations.path(LocationKind.DATASET, dataset)
        with concurrency(GPU_LIMIT, occupy=1, strict=False) if gpu else nullcontext():
            summary = predict_dataset(path, locations.state_dir, model, coverage, clips,
                                      device="cuda" if gpu else "cpu")  # fmt: skip
    described = (f"{summary.model} v{summary.version}: instances scored, abstained (threshold {summary.threshold} "
                 f"for {summary.coverage:.0%} validation coverage), refused and why"
                 + "".join(f". {note}" for note in summary.unchecked))  # fmt: skip
    create_table_artifact(key=f"predict-counts-v{summary.version}", table=summary.table(), description=described)
    get_run_logger().info("predict %s v%d: %d scored, %d abstained, %d refused", summary.model, summary.version,
                          summary.scored, summary.abstained, sum(summary.refused.values()))  # fmt: skip
    for note in summary.unchecked:
        get_run_logger().warning("predict %s v%d: %s", summary.model, summary.version, note)
    return dataclasses.asdict(summary)
