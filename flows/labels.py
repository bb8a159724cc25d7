"""Prefect flow ``import-mdai``: expert labels from an MD.ai export joined to a dataset (see tasks/labels/importer).

The export, the dataset and the key file are location names (:mod:`tasks.locations`); the key comes from the one
loader (``load_key``: the named key file, else the worker's MEDFLOW_KEY_FILE / MEDFLOW_DEID_KEY). Without a key, only
rows that already carry de-identified UIDs can join. The result holds counts and the labels table's handle only.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from flows.redact import redacted_errors
from tasks.locations import LocationKind, LocationName, Locations


@flow(name="import-mdai", persist_result=False)
def import_mdai_labels(export: LocationName, dataset: LocationName, key_file: LocationName | None = None
                       ) -> dict[str, Any]:  # fmt: skip
    """Import the export into the dataset; return the counts and the ``labels-…`` handle of its labels table."""
    with redacted_errors("import-mdai"):
        from tasks.config import load_settings
        from tasks.deid.keys import key_configured, load_key
        from tasks.deid.pseudonyms import Pseudonymizer
        from tasks.labels.importer import LABELS_DIR, import_mdai

        locations = Locations.from_settings()
        export_path = locations.path(LocationKind.LABELS, export)
        dataset_path = locations.path(LocationKind.DATASET, dataset)
        key_path = locations.path(LocationKind.KEY, key_file, must_exist=False) if key_file else None
        settings = load_settings()
        pseudo = Pseudonymizer(load_key(key_path, settings=settings)) if key_path or key_configured(settings) else None
        summary = import_mdai(export_path, dataset_path, pseudo)
        table = locations.register(LocationKind.LABELS, dataset_path / LABELS_DIR / "mdai-labels.csv")
    result = {**summary.as_dict(), "labels": table, "dataset": dataset, "keyed": pseudo is not None}
    get_run_logger().info("MD.ai import: %d of %d rows accepted, refused %s", summary.accepted, summary.rows,
                          summary.refused)  # fmt: skip
    return result
