"""``federate`` end to end on a real Prefect server: three sites (own store, manifest, labels, pseudonyms), FLARE's
simulator with the server and each site in its own process on loopback, 2 rounds of a tiny 3D CNN.

What the sites sent is read from the server-side traffic log: model weights under the network's parameter names,
aggregate metrics and FLARE's routing headers; no path, no id, no header-derived value of any site."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch

from tasks.locations import LocationKind, Locations, register_location
from tasks.synth.views import save_labels, write_view_dataset

TINY = {"target_col": "ef", "backbone": "cnn3d", "frames": 4, "size": 16, "num_workers": 0, "test_clips": 2}
_ID_COLUMNS = ["patient_id", "instance_id", "study_id", "series_id", "zarr_key", "study_date"]


def _strings(value: object) -> list[str]:
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [str(k), *_strings(v)]]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [value] if isinstance(value, str) else []


@pytest.mark.slow
def test_three_sites_federate_and_only_weights_and_aggregates_travel(
    prefect_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.artifacts import Artifact

    from flows.federate import SiteLocations, federate
    from models.federated.network import GlobalNetwork
    from models.run import load_run

    state = tmp_path / "state"
    monkeypatch.setenv("MEDFLOW_STATE_DIR", str(state))
    sites, secrets = [], {str(tmp_path)}
    for i in range(3):
        root = tmp_path / f"hospital-{i}"
        labels = write_view_dataset(root, patients=6 + 2 * i, seed=10 + i, frames=8, size=16)
        labels["patient_id"] = labels["patient_id"].str.replace("SYN", f"H{i}X")  # pseudonyms of its own key
        manifest = pd.read_parquet(root / "manifest.parquet")
        manifest["patient_id"] = manifest["patient_id"].str.replace("SYN", f"H{i}X")
        manifest.to_parquet(root / "manifest.parquet", index=False)
        save_labels(labels, root / "labels.csv")
        secrets |= {str(v) for col in _ID_COLUMNS for v in manifest[col] if len(str(v)) >= 6}
        dataset = register_location(state, LocationKind.DATASET, root)
        labels_name = register_location(state, LocationKind.LABELS, root / "labels.csv")
        sites.append(SiteLocations(dataset=dataset, labels=labels_name))

    options = {**TINY, "batch_size": 2}  # several batches at each site, of which a round trains one
    summary = federate(sites, "regression", options, rounds=2, algorithm="fedprox", mu=0.05, local_batches=1)

    assert [r["round"] for r in summary["rounds"]] == [0, 1] and all(r["sites"] == 3 for r in summary["rounds"])
    assert all(torch.isfinite(torch.tensor(r["metrics"]["val_loss"])) for r in summary["rounds"])
    locations = Locations(state, {})
    weights = []
    for name, result in summary["sites"].items():
        assert result["run_dir"].startswith("run-") and {"mae", "n"} <= set(result["metrics"]), name
        run = load_run(locations.path(LocationKind.RUN, result["run_dir"]))
        assert run.config["federation"]["sites"] == 3 and run.config["objective"]["mean"] > 0
        weights.append(run.model.state_dict())
    assert all(torch.equal(weights[0][k], w[k]) for w in weights[1:] for k in weights[0])  # one global model

    table = Artifact.get(f"federate-{summary['run_id']}-rounds")
    assert table is not None and len(json.loads(table.data)) == 2  # each round reached the dashboard

    workspace = state / "federate" / summary["run_id"] / "workspace"
    traffic = [json.loads(line) for p in workspace.rglob("traffic.jsonl") for line in p.open()]
    assert sorted(t["site"] for t in traffic) == sorted(f"site-{i}" for i in (1, 2, 3) for _ in range(2))
    names = set(GlobalNetwork("cnn3d", 1).state_dict())
    for record in traffic:
        dxo = record["message"]["DXO"]
        assert set(dxo["data"]) == names and all(set(v) == {"array", "dtype"} for v in dxo["data"].values())
        assert set(dxo["meta"]) <= {"initial_metrics", "NUM_STEPS_CURRENT_ROUND", "fedprox_mu"}, dxo["meta"]
        assert set(dxo["meta"]["initial_metrics"]) == {"val_loss"}
        assert dxo["meta"]["NUM_STEPS_CURRENT_ROUND"] == 1  # --local-batches 1: one optimiser step per round
        leaked = [s for s in _strings(record) for secret in secrets if secret in s]
        assert not leaked, leaked[:5]


@pytest.mark.parametrize("sites", [["only-one"], ["missing:labels.csv", "also:missing.csv"]])
def test_the_command_needs_two_existing_sites(sites: list[str]) -> None:
    from typer.testing import CliRunner

    from flows.cli import app

    args = ["federate", *[a for s in sites for a in ("--site", s)], "--task", "regression"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2 and "at least two --site" in " ".join(result.output.split())
