"""The whole path on the synthetic cohort: synth → deid-table → ingest (header and pixel de-id, views, QC) → train."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from models.training import TrainConfig, train_model
from tasks.synth import make_cohort


@pytest.mark.slow
def test_synth_ingest_train_one_epoch(tmp_path: Path) -> None:
    from tasks.deid.context import DeidContext
    from tasks.deid.keys import load_key, write_new_key
    from tasks.deid.pseudonyms import Pseudonymizer
    from tasks.deid.table import deidentify_table
    from tasks.ingest.folder import ingest_folder

    make_cohort(tmp_path / "cohort", patients=5, seed=4, volume_every=0)
    write_new_key(tmp_path / "key")
    key = load_key(tmp_path / "key")
    deidentify_table(tmp_path / "cohort" / "outcomes.csv", tmp_path / "labels.csv", Pseudonymizer(key), id_col="mrn",
                     date_cols=["study_date", "followup_date"], keep=["event", "ef", "sex", "group"],
                     age_cols=["age"])  # fmt: skip
    summary = ingest_folder(tmp_path / "cohort" / "dicom", tmp_path / "dataset", DeidContext.create(key), workers=1)
    assert summary.stored == summary.discovered > 0

    result = train_model(TrainConfig(str(tmp_path / "dataset"), str(tmp_path / "labels.csv"), "regression",
                                     id_col="mrn", target_col="ef", backbone="cnn3d", frames=4, size=16, epochs=1,
                                     num_workers=0, test_clips=2))  # fmt: skip
    predictions = pd.read_parquet(result.run_dir / "predictions.parquet")
    manifest = pd.read_parquet(tmp_path / "dataset" / "manifest.parquet")
    assert len(predictions) >= 1 and set(predictions["instance_id"]) <= set(manifest["instance_id"])
    outcomes = pd.read_csv(tmp_path / "cohort" / "outcomes.csv", dtype={"mrn": str})
    assert not set(outcomes["mrn"]) & set(predictions["patient_id"])  # pseudonymous ids only
