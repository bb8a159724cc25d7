"""Prefect flow ``demo``: the whole product on bundled data, end to end, visible in the dashboard.

Real pydicom-data files and a small synthetic echo cohort (clearly synthetic, with burned-in and header
PHI) are ingested into one dataset, a small survival model (3D CNN) is trained on the CPU and evaluated. Each step
is the same flow a hospital deployment runs, called here as a subflow so the dashboard shows one tree.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger

from flows.evaluate import evaluate
from flows.ingest import ingest
from flows.train import train

#: Small enough for a 2-core CPU in a few minutes; the same options a real run takes from ``medflow train``.
DEMO_TRAINING: dict[str, Any] = {
    "id_col": "mrn",
    "start_col": "study_date",
    "end_col": "followup_date",
    "event_col": "event",
    "backbone": "cnn3d",
    "epochs": 15,
    "frames": 16,
    "size": 32,
    "batch_size": 8,
    "num_workers": 0,
    "test_clips": 2,
    "accelerator": "cpu",
}


#: Outcome columns the demo keeps from the cohort's outcomes.csv (besides the id, the two dates and the age).
DEMO_KEPT_COLUMNS = ["event", "ef", "sex", "group"]


def stage_inputs(out: Path, key_file: Path, patients: int, seed: int) -> tuple[Path, Path]:
    """Write the demo's raw inputs under ``out/source`` and de-identified labels; return (source, labels).

    The raw inputs hold (synthetic or sample) PHI, like a hospital export; nothing under ``out/dataset``
    does.
    """
    from flows.commands.demo import stage_sample
    from tasks.deid.keys import load_key
    from tasks.deid.pseudonyms import Pseudonymizer
    from tasks.deid.table import deidentify_table
    from tasks.synth.cohort import make_cohort

    source = out / "source"
    stage_sample(source / "ref")  # folder names are audited as PHI: keep them short
    cohort = out / "cohort"
    if not (cohort / "outcomes.csv").exists():
        shutil.rmtree(cohort, ignore_errors=True)
        make_cohort(cohort, patients=patients, seed=seed)
    if not (source / "syn").exists():
        shutil.copytree(cohort / "dicom", source / "syn")
    labels = out / "labels.csv"
    deidentify_table(
        cohort / "outcomes.csv",
        labels,
        Pseudonymizer(load_key(key_file)),
        id_col="mrn",
        date_cols=["study_date", "followup_date"],
        keep=DEMO_KEPT_COLUMNS,  # the outcome and the subgroup columns; anything else the export holds is dropped
        age_cols=["age"],
    )
    return source, labels


@flow(name="demo", persist_result=False)
def demo(out: str, key_file: str, patients: int = 80, seed: int = 7, workers: int = 2) -> dict[str, Any]:
    """Ingest bundled real + synthetic DICOM, train a small survival model, evaluate it; return where to look."""
    logger = get_run_logger()
    root = Path(out)
    source, labels = stage_inputs(root, Path(key_file), patients, seed)
    dataset = root / "dataset"
    ingested = ingest(str(source), str(dataset), key_file=key_file, workers=workers, audit=True)
    logger.info("ingest: %s stored, %s quarantined", ingested.get("stored"), ingested.get("quarantined"))
    trained = train(str(dataset), str(labels), "survival", DEMO_TRAINING)
    evaluated = evaluate(trained["run_dir"], n_resamples=200)
    return {
        "dataset": str(dataset),
        "ingest": ingested,
        "run_dir": trained["run_dir"],
        "report": str(Path(trained["run_dir"]) / "report.html"),
        "metrics": evaluated,
    }
