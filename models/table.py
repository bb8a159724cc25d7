"""Join the dataset manifest with a labels table and split patients; plain pandas, no torch.

The result is the *training table*: one row per usable instance (QC passed, has a training view),
with ``patient_id``, ``instance_id``, ``view_key``, the label columns renamed to ``target`` or
``duration``/``event``, tabular covariates, the group column, and ``split`` in {train, val, test}.

Labels are read only through :func:`read_labels`: the table must carry the record ``medflow deid-table`` writes
beside it (``LABELS.csv.deid.json``) and be unchanged since, so every column a model, a prediction file or a
subgroup table can see is one the user kept there.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

MANIFEST = "manifest.parquet"
STORE = "store.zarr"


@dataclass(frozen=True)
class LabelSpec:
    """Which label columns mean what."""

    task: str
    id_col: str = "patient_id"
    start_col: str | None = None
    end_col: str | None = None
    event_col: str | None = None
    target_col: str | None = None
    tabular: tuple[str, ...] = ()
    group_col: str | None = None
    kind: str = "video"  # "video" (training views) or "volume" (native int16 arrays)
    carry: tuple[str, ...] = field(default=("sex", "age", "group"))


def read_labels(path: Path | str) -> pd.DataFrame:
    """The labels table written by ``medflow deid-table`` (checked against its record); ``ValueError`` otherwise."""
    from tasks.deid.table import read_record
    from tasks.errors import ConfigError

    try:
        record = read_record(Path(path))
    except ConfigError as error:
        raise ValueError(str(error)) from None
    frame = pd.read_csv(path)
    if list(frame.columns) != list(record["columns"]):
        raise ValueError("the labels table's columns differ from its de-identification record")
    return frame


def manifest_hash(dataset: Path) -> str:
    """SHA-256 of ``manifest.parquet`` (recorded in every run's config)."""
    return hashlib.sha256((dataset / MANIFEST).read_bytes()).hexdigest()


def _label_columns(labels: pd.DataFrame, spec: LabelSpec) -> pd.DataFrame:
    need = [spec.id_col]
    if spec.task == "survival":
        need += [c for c in (spec.start_col, spec.end_col, spec.event_col) if c]
        if None in (spec.start_col, spec.end_col, spec.event_col):
            raise ValueError("survival needs --start-col, --end-col and --event-col")
    else:
        if not spec.target_col:
            raise ValueError(f"{spec.task} needs --target-col")
        need.append(spec.target_col)
    need += list(spec.tabular) + ([spec.group_col] if spec.group_col else [])
    missing = [c for c in need if c not in labels.columns]
    if missing:
        raise ValueError(
            f"labels table lacks column(s) {', '.join(missing)}; name them with the --*-col options (and keep them "
            "with `medflow deid-table --keep/--age-cols`: it drops every column it is not told to keep)"
        )
    out = pd.DataFrame({"patient_id": labels[spec.id_col].astype(str)})
    if spec.task == "survival":
        start = pd.to_datetime(labels[spec.start_col])
        end = pd.to_datetime(labels[spec.end_col])
        out["duration"] = (end - start).dt.days.astype(float)
        out["event"] = labels[spec.event_col].astype(float)
        bad = (out["duration"] < 0) | out["duration"].isna()
        if bad.any():
            log.warning("dropping %d label rows with a missing or negative duration", int(bad.sum()))
            out = out[~bad]
        out["duration"] = out["duration"].clip(lower=1.0)
    else:
        out["target"] = labels.loc[out.index, spec.target_col]
    for col in spec.tabular:
        out[f"x_{col}"] = labels.loc[out.index, col]
    for col in dict.fromkeys([*spec.carry, *([spec.group_col] if spec.group_col else [])]):
        if col in labels.columns and col not in out.columns:
            out[col] = labels.loc[out.index, col]
    dup = out["patient_id"].duplicated()
    if dup.any():
        log.warning("labels hold %d duplicate patient rows; keeping the first of each", int(dup.sum()))
        out = out[~dup]
    return out


def load_table(dataset: Path, labels: pd.DataFrame, spec: LabelSpec) -> pd.DataFrame:
    """Manifest rows that passed QC and have data of ``spec.kind``, joined with their patient's labels."""
    manifest = pd.read_parquet(dataset / MANIFEST)
    n0 = len(manifest)
    if "qc_status" in manifest:
        manifest = manifest[manifest["qc_status"].fillna("fail") == "pass"]
    manifest = manifest[manifest["kind"] == spec.kind]
    key = "view_key" if spec.kind == "video" else "zarr_key"
    manifest = manifest[manifest[key].notna()].copy()
    manifest["array_key"] = manifest[key]
    keep = [
        "instance_id",
        "patient_id",
        "study_id",
        "array_key",
        "frames",
        "view_fps" if spec.kind == "video" else "kind",
    ]
    table = manifest[keep].merge(_label_columns(labels, spec), on="patient_id", how="inner")
    log.info("training table: %d of %d manifest rows (QC pass, %s, labelled)", len(table), n0, spec.kind)
    if table.empty:
        raise ValueError(
            "no manifest row matches the labels: check --id-col (pseudonymous patient ids, e.g. from "
            "`medflow deid-table`) and that the dataset has QC-passed instances"
        )
    return table.reset_index(drop=True)


def split_patients(patient_ids: pd.Series, seed: int, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
                   ) -> dict[str, list[str]]:  # fmt: skip
    """Shuffle unique patients with ``seed`` and cut train/val/test; every split gets a patient when ≥ 3."""
    patients = np.array(sorted(patient_ids.astype(str).unique()))
    rng = np.random.default_rng(seed)
    rng.shuffle(patients)
    n = len(patients)
    n_val = max(1, round(fractions[1] * n)) if n >= 3 else 0
    n_test = max(1, round(fractions[2] * n)) if n >= 3 else 0
    n_train = n - n_val - n_test
    return {
        "train": sorted(patients[:n_train].tolist()),
        "val": sorted(patients[n_train : n_train + n_val].tolist()),
        "test": sorted(patients[n_train + n_val :].tolist()),
    }


def subsample_train(split: dict[str, list[str]], fraction: float, seed: int) -> dict[str, list[str]]:
    """``split`` with only ``fraction`` of its training patients (seeded, at least 2), validation and test unchanged:
    the "labels lag data" setting, where most patients have images but no label yet."""
    if not 0 < fraction <= 1:
        raise ValueError(f"label fraction must be in (0, 1], got {fraction}")
    if fraction == 1:
        return split
    train = np.array(split["train"])
    keep = min(len(train), max(2, round(fraction * len(train))))
    picked = np.random.default_rng([seed, 1]).permutation(len(train))[:keep]  # nested: 10% ⊂ 25% for one seed
    return {**split, "train": sorted(train[picked].tolist())}


def assign_split(table: pd.DataFrame, split: dict[str, list[str]]) -> pd.DataFrame:
    where = {p: name for name, ps in split.items() for p in ps}
    out = table.copy()
    out["split"] = out["patient_id"].map(where)
    return out[out["split"].notna()].reset_index(drop=True)


@dataclass
class TabularScaler:
    """Encode tabular covariates: numeric columns z-scored, others one-hot by the training categories."""

    columns: list[str]
    numeric: dict[str, tuple[float, float]] = field(default_factory=dict)
    categories: dict[str, list[str]] = field(default_factory=dict)

    def fit(self, train: pd.DataFrame) -> TabularScaler:
        for col in self.columns:
            values = train[f"x_{col}"]
            if pd.api.types.is_numeric_dtype(values):
                self.numeric[col] = (float(values.mean()), float(values.std(ddof=0) or 1.0))
            else:
                self.categories[col] = sorted(values.astype(str).unique().tolist())
        return self

    @property
    def width(self) -> int:
        return len(self.numeric) + sum(max(len(c) - 1, 1) for c in self.categories.values())

    def transform(self, table: pd.DataFrame) -> np.ndarray:
        parts = []
        for col in self.columns:
            values = table[f"x_{col}"]
            if col in self.numeric:
                mean, std = self.numeric[col]
                parts.append(((values.astype(float).fillna(mean) - mean) / std).to_numpy()[:, None])
            else:
                cats = self.categories[col]
                onehot = np.stack([(values.astype(str) == c).to_numpy() for c in cats[1:] or cats], axis=1)
                parts.append(onehot.astype(float))
        if not parts:
            return np.zeros((len(table), 0), dtype=np.float32)
        return np.concatenate(parts, axis=1).astype(np.float32)

    def state(self) -> dict:
        return {"columns": self.columns, "numeric": {k: list(v) for k, v in self.numeric.items()},
                "categories": self.categories}  # fmt: skip

    @classmethod
    def from_state(cls, state: dict) -> TabularScaler:
        return cls(list(state["columns"]), {k: tuple(v) for k, v in state["numeric"].items()},
                   {k: list(v) for k, v in state["categories"].items()})  # fmt: skip
