"""Training table: QC-failed rows excluded, labels joined, patient-level splits without overlap."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.table import LabelSpec, TabularScaler, assign_split, load_table, split_patients

SURVIVAL = LabelSpec(
    "survival", start_col="study_date", end_col="followup_date", event_col="event", tabular=("age", "sex")
)


@given(st.lists(st.integers(0, 40), min_size=1, max_size=200), st.integers(0, 10_000))
@settings(max_examples=60, deadline=None)
def test_no_patient_is_in_two_splits(patients: list[int], seed: int) -> None:
    ids = pd.Series([f"P{p}" for p in patients])
    split = split_patients(ids, seed)
    sets = [set(split[name]) for name in ("train", "val", "test")]
    assert not (sets[0] & sets[1] or sets[0] & sets[2] or sets[1] & sets[2])
    assert set().union(*sets) == set(ids)
    if ids.nunique() >= 3:
        assert all(sets)


def test_split_is_deterministic_in_the_seed() -> None:
    ids = pd.Series([f"P{i}" for i in range(30)])
    assert split_patients(ids, 1) == split_patients(ids, 1) != split_patients(ids, 2)


def test_table_excludes_failed_qc_and_joins_labels(tiny_dataset: tuple[Path, Path]) -> None:
    dataset, labels_path = tiny_dataset
    manifest = pd.read_parquet(dataset / "manifest.parquet")
    table = load_table(dataset, pd.read_csv(labels_path), SURVIVAL)
    failed = set(manifest.loc[manifest["qc_status"] == "fail", "instance_id"])
    assert failed and not failed & set(table["instance_id"])
    assert len(table) == (manifest["qc_status"] == "pass").sum()
    assert (table["duration"] >= 1).all() and set(table["event"]) <= {0.0, 1.0}
    assert {"x_age", "x_sex", "sex", "age", "group"} <= set(table.columns)
    table = assign_split(table, split_patients(table["patient_id"], 0))
    per_patient = table.groupby("patient_id")["split"].nunique()
    assert (per_patient == 1).all()  # a patient's videos stay together


def test_missing_label_columns_name_the_option(tiny_dataset: tuple[Path, Path]) -> None:
    dataset, labels_path = tiny_dataset
    with pytest.raises(ValueError, match="--target-col"):
        load_table(dataset, pd.read_csv(labels_path), LabelSpec("regression"))
    with pytest.raises(ValueError, match="lacks column"):
        load_table(dataset, pd.read_csv(labels_path), LabelSpec("regression", target_col="nope"))
    with pytest.raises(ValueError, match="--id-col"):
        load_table(dataset, pd.read_csv(labels_path).assign(patient_id="x"), LabelSpec("regression", target_col="ef"))


def test_tabular_scaler_zscores_numbers_and_one_hots_categories() -> None:
    train = pd.DataFrame({"x_age": [50.0, 70.0], "x_sex": ["F", "M"]})
    scaler = TabularScaler(["age", "sex"]).fit(train)
    x = scaler.transform(train)
    assert scaler.width == 2 and x.shape == (2, 2)
    assert x[:, 0].tolist() == [-1.0, 1.0] and x[:, 1].tolist() == [0.0, 1.0]
    again = TabularScaler.from_state(scaler.state())
    assert (again.transform(train) == x).all()
