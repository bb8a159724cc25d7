"""The Prefect flows ``pretrain`` then ``train``: a backbone pretrained without labels is what fine-tuning starts
from, passed between the flows as a ``weights-…`` handle (never a path)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from models.checkpoints import backbone_config, load_checkpoint
from models.networks import build_backbone
from tasks.errors import MedflowError
from tasks.locations import LocationKind, Locations, register_location
from tasks.synth.views import save_labels, write_view_dataset

pytestmark = pytest.mark.slow


def test_pretrain_flow_then_train_from_its_weights(
    prefect_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from flows.pretrain import pretrain
    from flows.train import train

    state = tmp_path / "state"
    monkeypatch.setenv("MEDFLOW_STATE_DIR", str(state))
    root, labels = tmp_path / "ds", tmp_path / "labels.csv"
    save_labels(write_view_dataset(root, patients=12, seed=2, frames=16, size=32), labels)
    dataset = register_location(state, LocationKind.DATASET, root)
    methods = ["rotation", "jigsaw", "contrastive"]
    summary = pretrain(dataset, {"methods": methods, "backbone": "cnn3d", "frames": 8, "size": 16, "epochs": 1,
                                 "batch_size": 4, "num_workers": 0, "limit_batches": 2})  # fmt: skip
    assert summary["weights"].startswith("weights-") and summary["dataset"] == dataset
    assert {"train_rotation", "train_jigsaw", "train_contrastive"} <= set(summary["metrics"])
    checkpoint = Locations(state, {}).path(LocationKind.WEIGHTS, summary["weights"])
    assert checkpoint.name == "backbone.pt" and checkpoint.parent.parent == (root / "pretrain").resolve()
    saved = load_checkpoint(checkpoint)  # weights_only: tensors and plain data
    meta = backbone_config(checkpoint)
    assert meta and meta["backbone"] == "cnn3d" and meta["kind"] == "video" and meta["methods"] == methods
    net, fresh = build_backbone("cnn3d", checkpoint), build_backbone("cnn3d")
    assert all(torch.equal(v, saved["state_dict"][k]) for k, v in net.state_dict().items())
    assert not all(torch.equal(v, fresh.state_dict()[k]) for k, v in net.state_dict().items())

    options = {"target_col": "ef", "backbone": "cnn3d", "frames": 8, "size": 16, "epochs": 1, "num_workers": 0,
               "test_clips": 1, "weights": summary["weights"], "label_fraction": 0.5}  # fmt: skip
    trained = train(dataset, register_location(state, LocationKind.LABELS, labels), "regression", options)
    run_dir = Locations(state, {}).path(LocationKind.RUN, trained["run_dir"])
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert config["pretrained"]["run_id"] == summary["run_id"] and config["args"]["label_fraction"] == 0.5
    with pytest.raises(MedflowError, match="methods must be"):
        pretrain(dataset, {"methods": ["colourisation"]})
