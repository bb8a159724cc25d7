"""The deployment side of the Prefect leak test, run as its own process against the test's server
(``python -m tests.reliability.leak_driver SPEC.json``): what ``medflow serve`` and its triggers would run.

1. ``ingest-source`` on the configured folder source ``inbox`` (the export folder), then on ``gone``, a configured
   source whose folder does not exist (must fail, naming the source only);
2. ``train-on-new-data`` started by hand with the de-identified labels (subflow ``train``), then ``evaluate`` on the
   run handle it returns;
3. ``train`` with a labels handle whose path is a folder named like a patient (the labels check's error names the
   file: the run must fail with that text withheld, and the text must land in the state directory's error file).

Prints one JSON line: the names and outcomes (the test checks them; nothing here is a path).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _failure(call) -> str:
    try:
        call()
    except Exception as error:  # the flows raise their redacted error; its text is what Prefect stored
        return f"{type(error).__name__}: {error}"
    return ""


def main(spec_path: str) -> None:
    from deployments.pipelines import ingest_source, train_on_new_data
    from deployments.server import drain_prefect_workers
    from flows.evaluate import evaluate
    from flows.train import train
    from tasks.locations import LocationKind, Locations

    spec = json.loads(Path(spec_path).read_text())
    places = Locations.from_settings()
    dataset = places.register(LocationKind.DATASET, Path(spec["dataset"]))
    labels = places.register(LocationKind.LABELS, Path(spec["labels"]))
    broken_labels = places.register(LocationKind.LABELS, Path(spec["broken_labels"]))
    fetched = ingest_source(source="inbox", dataset=dataset, workers=1)
    missing = _failure(lambda: ingest_source(source="gone", dataset=dataset, workers=1))
    gate = train_on_new_data(
        dataset=dataset, train_options={"labels": labels, "task": "survival", "options": spec["training"]}
    )
    metrics = evaluate(gate["train"]["run_dir"], n_resamples=20, seed=1)
    withheld = _failure(lambda: train(dataset, broken_labels, "survival", spec["training"]))
    drain_prefect_workers()
    print(
        json.dumps(
            {
                "ingest": fetched["ingest"],
                "missing_source": missing,
                "trained": gate["trained"],
                "run": gate["train"]["run_dir"],
                "metrics": sorted(metrics),
                "withheld": withheld,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1])
