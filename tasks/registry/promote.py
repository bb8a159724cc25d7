"""``promote_run``: score a new run (challenger) and the champion on the same held-out patients and decide.

Held-out patients are the challenger's test patients minus every patient the champion trained or validated
on. Both models are run by the same inference routine (``tasks.predict.infer``) on the same clips; the labels
and subgroup columns come from the challenger's ``predictions.parquet``. The decision is recorded on the
challenger's model version (tags) and, when it wins, the alias ``champion`` moves to it; the promotion plots
(``tasks.registry.plots``) are logged to the challenger's MLflow run under ``promotion/``.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from models.run import load_run
from models.table import MANIFEST
from tasks.errors import ConfigError
from tasks.evaluate.metrics import Task
from tasks.predict.infer import score_rows
from tasks.registry.compare import Decision, PromotionPolicy, compare
from tasks.registry.plots import promotion_files
from tasks.registry.store import CHAMPION, champion_version, client
from tasks.registry.tracking import read_record
from tasks.registry.versions import load_version, version_config

log = logging.getLogger(__name__)

PLOTS_DIR = "promotion"  # in the challenger's MLflow run
LABEL_COLUMNS = ("patient_id", "instance_id", "time", "event", "label", "sex", "age", "group")


@dataclass(frozen=True)
class PromotionResult:
    model: str
    challenger: int
    champion: int | None  # the champion it was compared with (None: there was none)
    promoted: bool
    reasons: list[str]
    table: list[dict[str, object]]
    patients: int  # held-out patients shared by both
    plots: list[str] = field(default_factory=list)  # artifact paths in the challenger's MLflow run
    mlflow_run_id: str | None = None


def held_out_rows(run_dir: Path, config: dict[str, Any], excluded: set[str]) -> pd.DataFrame:
    """Challenger test predictions (labels, subgroup columns) of patients not in ``excluded``, with array keys."""
    pred = pd.read_parquet(run_dir / "predictions.parquet")
    pred = pred[~pred["patient_id"].astype(str).isin(excluded)]
    manifest = pd.read_parquet(Path(config["dataset"]) / MANIFEST)
    key = "view_key" if config["clip"]["kind"] == "video" else "zarr_key"
    manifest = manifest.assign(array_key=manifest[key])[["instance_id", "array_key"]]
    rows = pred[[c for c in LABEL_COLUMNS if c in pred.columns]].merge(manifest, on="instance_id", how="inner")
    return rows[rows["array_key"].notna()].reset_index(drop=True)


def promote_run(run_dir: Path, policy: PromotionPolicy, state_dir: Path, clips: int = 2) -> PromotionResult:
    """Compare the run's model version with the champion; move the alias when it wins; record why or why not."""
    record = read_record(run_dir)
    if record is None:
        raise ConfigError("the run has no registry record: it was trained with MLflow tracking switched off")
    c = client(state_dir)
    name, version = record["model"], int(record["version"])
    champion = champion_version(c, name)
    if champion is None or int(champion.version) == version:
        reasons = ["first version of this model: no champion to compare with"] if champion is None else []
        c.set_registered_model_alias(name, CHAMPION, str(version))
        _tag(c, name, version, True, reasons)
        return PromotionResult(name, version, None, True, reasons, [], 0)

    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    with tempfile.TemporaryDirectory() as tmp:
        old = version_config(c, champion, Path(tmp) / "config")
        excluded = {str(p) for p in [*old["split"]["train"], *old["split"]["val"]]}
        rows = held_out_rows(run_dir, config, excluded)
        decision = _decide(rows, run_dir, config, load_version(c, champion, Path(tmp) / "champion"), policy, clips)
    if decision.promote:
        c.set_registered_model_alias(name, CHAMPION, str(version))
    _tag(c, name, version, decision.promote, decision.reasons)
    title = f"{name} v{version} vs champion v{champion.version}: {'promoted' if decision.promote else 'not promoted'}"
    plots = log_plots(c, record["mlflow_run_id"], title, decision, policy)
    log.info("%s v%d vs champion v%s: %s", name, version, champion.version, "promoted" if decision.promote else "kept")
    return PromotionResult(name, version, int(champion.version), decision.promote, decision.reasons, decision.table(),
                           int(rows["patient_id"].nunique()) if len(rows) else 0, plots,
                           record["mlflow_run_id"])  # fmt: skip


def log_plots(c: Any, run_id: str, title: str, decision: Decision, policy: PromotionPolicy) -> list[str]:
    """Render the promotion plots and log them to the challenger's MLflow run; their artifact paths."""
    files = promotion_files(title, decision, policy)
    with tempfile.TemporaryDirectory() as tmp:
        for file_name, data in files.items():
            (Path(tmp) / file_name).write_bytes(data)
            c.log_artifact(run_id, str(Path(tmp) / file_name), PLOTS_DIR)
    return [f"{PLOTS_DIR}/{file_name}" for file_name in files]


def _decide(rows: pd.DataFrame, run_dir: Path, config: dict, champion: Any, policy: PromotionPolicy,
            clips: int) -> Decision:  # fmt: skip
    if rows.empty:
        return Decision(False, ["no held-out patients shared with the champion (all were in its training data)"])
    dataset = Path(config["dataset"])
    task = Task(config["task"])
    frames = []
    for model in (champion, load_run(run_dir)):
        scored = score_rows(model, dataset, rows, clips=clips)
        frames.append(rows.drop(columns=["array_key"]).assign(**scored.columns))
    return compare(frames[0], frames[1], task, policy)


def _tag(c: Any, name: str, version: int, promoted: bool, reasons: list[str]) -> None:
    c.set_model_version_tag(name, str(version), "promotion", "promoted" if promoted else "refused")
    c.set_model_version_tag(name, str(version), "promotion.reasons", "; ".join(reasons)[:4900] or "-")
