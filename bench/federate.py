"""Science check for ``medflow federate``: three synthetic sites that differ in frame rate, ejection-fraction
distribution and size; EF regression scored on each site's own held-out patients (MAE, EF points) for

- **local**: each site trains alone on its own training patients;
- **centralised**: one model on all sites' training patients pooled (what federation tries to match);
- **FedAvg** and **FedProx** on NVIDIA FLARE (simulator: server + one process per site), ``--rounds`` rounds of
  ``--local-batches`` batches per site (default 90 x 2: about as many optimiser steps as the largest site's 30
  epochs; whole local epochs, ``--local-batches 0``, let each site pull the head towards its own EF range between
  averagings: client drift under label skew);
- the floors: predicting the pooled training mean, or each site's own training mean (what a model that learns
  nothing from the motion but the site's intercept scores).

Same network (``cnn3d``, or ``cnn3d_gn`` with GroupNorm), clip and optimiser in every arm; last-epoch
weights everywhere (no model selection). CPU-sized defaults (3 x 48/24/12 = 252 patients, 30 epochs, batch 16:
~10 min on 2 cores, where centralised training learns EF well below both floors); writes
``bench/results/federate.json``.

    python bench/federate.py [--epochs 30] [--scale 3] [--backbone cnn3d] [--work /tmp/medflow-federate-bench]
    python bench/federate.py --arms centralised      # a quick proxy: does the pooled model learn at this size?
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pandas as pd
import zarr

from tasks.synth.views import save_labels, write_view_dataset

#: name, patients, view fps, EF mean and SD: a large referral centre, a mid-size clinic, a small sick-heart unit
SITES = [("site-1", 48, 50.0, (58.0, 9.0)), ("site-2", 24, 30.0, (45.0, 10.0)), ("site-3", 12, 20.0, (33.0, 8.0))]


#: the compared arms, in the order they run
ARMS = ("local", "centralised", "fedavg", "fedprox")


def make_sites(work: Path, seed: int, scale: int = 1, size: int = 32) -> list[tuple[str, Path]]:
    """The three sites' datasets (``scale`` times the table's patients), cached under ``work`` per setting."""
    out = []
    for k, (name, patients, fps, ef) in enumerate(SITES):
        root = work / f"x{scale}-px{size}-seed{seed}" / name
        if not (root / "labels.csv").exists():
            labels = write_view_dataset(root, patients * scale, seed + k, frames=48, size=size, fps=fps, ef=ef,
                                        id_prefix=f"S{k + 1}P")  # fmt: skip
            save_labels(labels, root / "labels.csv")
        out.append((name, root))
    return out


def pool(sites: list[tuple[str, Path]], work: Path) -> Path:
    """All sites' arrays, manifests and labels in one dataset (what centralising the data would mean)."""
    root = sites[0][1].parent / "pooled"
    if (root / "labels.csv").exists():
        return root
    store = zarr.open_group(root / "store.zarr", mode="w", zarr_format=3)
    manifests, labels = [], []
    for _, site in sites:
        manifest = pd.read_parquet(site / "manifest.parquet")
        src = zarr.open_group(site / "store.zarr", mode="r")
        for key in manifest["view_key"]:
            store.create_array(key, data=src[key][...], chunks=src[key].chunks)
        manifests.append(manifest)
        labels.append(pd.read_csv(site / "labels.csv"))
    pd.concat(manifests).to_parquet(root / "manifest.parquet", index=False)
    save_labels(pd.concat(labels, ignore_index=True), root / "labels.csv")
    return root


def options(args: argparse.Namespace) -> dict[str, Any]:
    return {"target_col": "ef", "backbone": args.backbone, "frames": args.frames, "stride": args.stride,
            "size": args.size, "batch_size": args.batch_size, "lr": args.lr, "num_workers": 0, "test_clips": 2,
            "seed": args.seed}  # fmt: skip


def fit_and_score(cfg: Any, split: dict | None, objective_state: dict | None, epochs: int) -> tuple[pd.DataFrame, Any]:
    """Train a prepared run for ``epochs`` (last weights); per-instance test predictions and the prepared run."""
    import pytorch_lightning as pl

    from models.heads import objective_from_state
    from models.training import prepare_run

    pl.seed_everything(cfg.seed, workers=True, verbose=False)
    objective = objective_from_state(objective_state) if objective_state else None
    prepared = prepare_run(cfg, objective=objective, split=split)
    trainer = pl.Trainer(max_epochs=epochs, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0, accelerator="cpu")  # fmt: skip
    if epochs:  # 0: only the split, the encoding and the floors (arms left out)
        trainer.fit(prepared.model, datamodule=prepared.dm)
    out, idx = prepared.model.predict_outputs(prepared.dm.test_dataloader())
    rows = prepared.dm.rows("test").iloc[idx.numpy()]
    return pd.DataFrame({"patient_id": rows["patient_id"].to_numpy(), "label": rows["target"].to_numpy(),
                         "prediction": prepared.objective.score(out).numpy()}), prepared  # fmt: skip


def mae_by_site(pred: pd.DataFrame) -> dict[str, float]:
    site = pred["patient_id"].str.extract(r"^S(\d)P")[0].map(lambda k: f"site-{k}")
    return {name: float((g["label"] - g["prediction"]).abs().mean()) for name, g in pred.groupby(site)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=30, help="epochs of the local and centralised arms")
    ap.add_argument("--rounds", type=int, default=90, help="federated rounds")
    ap.add_argument("--local-batches", type=int, default=2, help="batches per site per round (0: one whole epoch)")
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--stride", type=int, default=4, help="every n-th view frame: 12 x 4 covers 0.96 s at 50 fps, "
                    "1.6 s at 30 fps, 2.4 s at 20 fps (a beat is 0.6-1.2 s)")
    ap.add_argument("--scale", type=int, default=3, help="patients per site = scale x (48, 24, 12)")
    ap.add_argument("--size", type=int, default=32, help="view and clip size in pixels")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--backbone", default="cnn3d", choices=["cnn3d", "cnn3d_gn"],
                    help="cnn3d_gn: GroupNorm, no batch statistics (a batch at a site holds that site only)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--arms", nargs="+", default=list(ARMS), choices=ARMS, help="a quick proxy: --arms centralised")
    ap.add_argument("--mu", type=float, default=0.01, help="FedProx proximal weight")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per process (3 sites run at once)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/medflow-federate-bench"))
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("results") / "federate.json")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    os.environ.setdefault("MEDFLOW_STATE_DIR", str(args.work / "state"))
    import torch

    torch.set_num_threads(args.threads)  # the sites' processes inherit OMP_NUM_THREADS below
    os.environ["OMP_NUM_THREADS"] = str(args.threads)

    from models.federated.job import run_federation
    from models.federated.plan import FederationPlan, Site, agree_objective
    from models.federated.site import evaluate_site, summarise_site
    from models.training import TrainConfig
    from tasks.locations import LocationKind, Locations

    args.work.mkdir(parents=True, exist_ok=True)
    sites = make_sites(args.work, args.seed, args.scale, args.size)
    locations = Locations.from_settings()
    dataset, labels = LocationKind.DATASET, LocationKind.LABELS
    plan_sites = [Site(name, locations.register(dataset, root), locations.register(labels, root / "labels.csv"))
                  for name, root in sites]  # fmt: skip
    opts = options(args)
    plan = FederationPlan("regression", plan_sites, opts, rounds=args.rounds, mu=args.mu, run_id="bench",
                          local_batches=args.local_batches or None)
    summaries = [summarise_site(plan, s, locations) for s in plan.sites]
    plan.objective = agree_objective("regression", None, summaries)
    results: dict[str, Any] = {"sites": {}, "arms": {}, "seconds": {}}
    for (name, root), summary in zip(sites, summaries, strict=True):
        labels = pd.read_csv(root / "labels.csv")
        results["sites"][name] = {"patients": len(labels), "train_instances": summary["n"],
                                  "fps": dict((s[0], s[2]) for s in SITES)[name],
                                  "ef_mean": round(float(labels["ef"].mean()), 1)}  # fmt: skip
    results["arms"]["pooled-mean floor"] = {}
    site_floor: dict[str, float] = {}

    t0 = time.time()
    local: dict[str, float] = {}
    splits = {}
    for name, root in sites:
        cfg = TrainConfig(str(root), str(root / "labels.csv"), "regression", **{**opts, "epochs": args.epochs})
        pred, prepared = fit_and_score(cfg, None, None, args.epochs if "local" in args.arms else 0)
        splits[name] = prepared.split
        local[name] = mae_by_site(pred)[name]
        results["sites"][name]["test_patients"] = len(prepared.split["test"])
        results["sites"][name]["test_instances"] = len(pred)
        site_floor[name] = float((pred["label"] - prepared.objective.mean).abs().mean())
        floor = float((pred["label"] - plan.objective["mean"]).abs().mean())
        results["arms"]["pooled-mean floor"][name] = floor
    results["arms"]["site-mean floor"] = site_floor
    if "local" in args.arms:
        results["arms"]["local"] = local
        results["seconds"]["local"] = time.time() - t0
        print("local", local, flush=True)

    if "centralised" in args.arms:
        t0 = time.time()
        pooled = pool(sites, args.work)
        union = {part: [p for n, _ in sites for p in splits[n][part]] for part in ("train", "val", "test")}
        cfg = TrainConfig(str(pooled), str(pooled / "labels.csv"), "regression", **{**opts, "epochs": args.epochs})
        results["arms"]["centralised"] = mae_by_site(fit_and_score(cfg, union, None, args.epochs)[0])
        results["seconds"]["centralised"] = time.time() - t0
        print("centralised", results["arms"]["centralised"], flush=True)

    for algorithm in [a for a in ("fedavg", "fedprox") if a in args.arms]:
        t0 = time.time()
        plan.algorithm, plan.run_id = algorithm, f"bench-{algorithm}"
        plan.__post_init__()
        fed = run_federation(plan, args.work / f"fed-{algorithm}")
        scores = {}
        for site in plan.sites:
            _, metrics = evaluate_site(plan, site, fed.weights, locations)
            scores[site.name] = metrics["mae"]
        results["arms"][algorithm] = scores
        results["rounds_" + algorithm] = fed.rounds
        results["seconds"][algorithm] = time.time() - t0
        print(algorithm, scores, flush=True)

    results["machine"] = {"python": platform.python_version(), "cpu_count": os.cpu_count(),
                          "load_avg": os.getloadavg(), "epochs": args.epochs, "rounds": args.rounds,
                          "local_batches": args.local_batches, "frames": args.frames,
                          "stride": args.stride, "mu": args.mu, "scale": args.scale, "size": args.size,
                          "batch_size": args.batch_size, "lr": args.lr,
                          "backbone": args.backbone}  # fmt: skip
    print(table(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))


def table(results: dict[str, Any]) -> str:
    names = list(results["sites"])
    lines = ["| arm | " + " | ".join(f"{n} MAE" for n in names) + " | mean |", "|" + "---|" * (len(names) + 2)]
    for arm, scores in results["arms"].items():
        values = [scores.get(n, float("nan")) for n in names]
        lines.append(f"| {arm} | " + " | ".join(f"{v:.2f}" for v in values) + f" | {np.nanmean(values):.2f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
