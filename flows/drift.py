"""Prefect flow ``drift``: each dataset update, new rows vs the champion's training rows; event when they drift.

Triggered by ``medflow.dataset.updated``. Parameters: the dataset's location name and optionally one registered
model (default: every champion of the dataset). The table artifact holds property names, medians or mixes and
p-values (no rows); ``medflow.dataset.drifted`` names the drifted properties, which can trigger retraining.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact
from prefect.events import emit_event

from flows.redact import redacted_errors
from tasks.locations import LocationKind, LocationName, Locations
from tasks.monitor.champion import champion_drift
from tasks.registry.store import champion_version, client, models_of_dataset

DRIFTED_EVENT = "medflow.dataset.drifted"


@flow(name="drift", persist_result=False)
def drift(dataset: LocationName, model: LocationName | None = None, alpha: float = 0.01) -> list[dict[str, Any]]:
    """Drift tables of the dataset's new rows against each champion's training rows."""
    results = []
    with redacted_errors("drift"):
        locations = Locations.from_settings()
        path = locations.path(LocationKind.DATASET, dataset)
        c = client(locations.state_dir)
        names = [model] if model else [m for m in models_of_dataset(c, dataset) if champion_version(c, m)]
        for name in names:
            tests, new_rows = champion_drift(path, locations.state_dir, name, alpha)
            drifted = [t.feature for t in tests if t.drifted]
            results.append({"model": name, "new_rows": new_rows, "drifted": drifted})
            if tests:
                described = f"{name}: {new_rows} new rows vs the champion's training rows"
                create_table_artifact(key="drift", table=[t.row() for t in tests], description=described)
            if drifted:
                payload = {"dataset": dataset, "model": name, "features": drifted, "new_rows": new_rows}
                emit_event(event=DRIFTED_EVENT, resource={"prefect.resource.id": f"medflow.dataset.{dataset}"},
                           payload=payload)  # fmt: skip
    get_run_logger().info("drift of %s: %s", dataset, results)
    return results
