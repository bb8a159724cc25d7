"""Science check for ``medflow pretrain``: does self-supervised pretraining help when labels are scarce?

On the synthetic echo cohort (EF lives in the motion), for each label fraction (default 10%, 25%, 100% of the
training patients; validation and test splits unchanged) and each seed, fine-tune the same backbone for the same
epochs from scratch and from each pretrained backbone, and report test R² of the ejection-fraction regression
(mean ± sd over seeds, and the per-seed paired difference).

Pretraining sees every stored array of the dataset (no labels), as ``medflow pretrain DATASET`` does; with
``--pretrain-patients N`` it instead uses a disjoint synthetic cohort of N patients (no test images seen at all).

    python bench/pretrain.py                                  # CPU-sized (minutes)
    python bench/pretrain.py --patients 600 --size 112 --frames 32 --backbone r2plus1d_18 --epochs 30 \
        --pretrain-epochs 50 --workers 8                      # on a GPU

Writes ``bench/results/pretrain-<backbone>.json``. Peer: training from scratch on the same labels (the baseline
Taleb et al. 2020 compare against).
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.pretrain.run import PretrainConfig, pretrain_backbone
from models.training import TrainConfig, train_model
from tasks.synth.views import save_labels, write_view_dataset


def _dataset(work: Path, patients: int, seed: int, frames: int) -> Path:
    root = work / f"views-{patients}-{seed}-{frames}"
    if not (root / "manifest.parquet").exists():
        t0 = time.time()
        save_labels(write_view_dataset(root, patients, seed, frames=frames), root / "labels.csv")
        print(f"wrote {patients} synthetic patients (seed {seed}) in {time.time() - t0:.0f} s", flush=True)
    return root


def _previous(dataset: Path, cfg: PretrainConfig) -> Path | None:
    """A finished pretraining run of ``dataset`` with the same options (run id aside), if any."""
    want = {k: v for k, v in asdict(cfg).items() if k != "run_id"}
    for config in sorted((dataset / "pretrain").glob("*/config.yaml")):
        args = {k: v for k, v in yaml.safe_load(config.read_text())["args"].items() if k != "run_id"}
        if args == want and (config.parent / "backbone.pt").exists():
            return config.parent
    return None


def _previous_metrics(run_dir: Path) -> dict[str, float]:
    return yaml.safe_load((run_dir / "config.yaml").read_text())["metrics"]


def _summary(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {sd:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--patients", type=int, default=200)
    ap.add_argument("--pretrain-patients", type=int, default=0, help="0: pretrain on the dataset itself")
    ap.add_argument("--fractions", default="0.1,0.25,1.0")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--variants", default="rotation+jigsaw,contrastive",
                    help="pretraining method sets to compare, comma-separated; methods joined by +")  # fmt: skip
    ap.add_argument("--backbone", default="cnn3d")
    ap.add_argument("--epochs", type=int, default=15, help="fine-tuning epochs (same for scratch and pretrained)")
    ap.add_argument("--pretrain-epochs", type=int, default=15)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--stride", type=int, default=4, help="every n-th frame of the 50 fps view (4: 1.28 s)")
    ap.add_argument("--size", type=int, default=32, help="spatial size on the device")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--work", type=Path, default=Path("/tmp/medflow-pretrain-bench"))
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    fractions = [float(f) for f in args.fractions.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    variants = [v for v in args.variants.split(",") if v]
    dataset = _dataset(args.work, args.patients, 0, 80)
    source = _dataset(args.work, args.pretrain_patients, 1000, 80) if args.pretrain_patients else dataset
    size = args.size or None
    results: dict = {"machine": platform.processor() or platform.machine(),
                     "args": {k: str(v) for k, v in vars(args).items()}, "pretrain": {}, "r2": {}}  # fmt: skip

    weights: dict[str, str | None] = {"scratch": None}
    for variant in variants:
        t0 = time.time()
        cfg = PretrainConfig(str(source), methods=variant.split("+"), backbone=args.backbone, frames=args.frames,
                             stride=args.stride, size=size, epochs=args.pretrain_epochs, batch_size=args.batch_size,
                             lr=args.lr, num_workers=args.workers, seed=0)  # fmt: skip
        done = _previous(source, cfg)
        if done:  # an earlier bench run pretrained this exact configuration
            weights[variant], metrics = str(done / "backbone.pt"), _previous_metrics(done)
        else:
            r = pretrain_backbone(cfg)
            weights[variant], metrics = str(r.checkpoint), r.metrics
        results["pretrain"][variant] = {**metrics, "seconds": round(time.time() - t0, 1), "reused": bool(done)}
        shown = ", ".join(f"{k}={v:.3f}" for k, v in metrics.items() if k.startswith("val_"))
        print(f"pretrained {variant} in {time.time() - t0:.0f} s{' (reused)' if done else ''}: {shown}", flush=True)

    out = Path(__file__).parent / "results" / f"pretrain-{args.backbone}.json"
    out.parent.mkdir(exist_ok=True)
    common = dict(dataset=str(dataset), labels=str(dataset / "labels.csv"), task="regression", target_col="ef",
                  backbone=args.backbone, frames=args.frames, stride=args.stride, size=size, epochs=args.epochs,
                  batch_size=args.batch_size, num_workers=args.workers, test_clips=4, patience=args.epochs,
                  lr=args.lr)  # fmt: skip
    for fraction in fractions:
        for name, path in weights.items():
            scores = []
            for seed in seeds:
                t0 = time.time()
                r = train_model(TrainConfig(**common, weights=path, seed=seed, label_fraction=fraction))
                scores.append(r.metrics["training"]["r2"])
                results["r2"].setdefault(str(fraction), {})[name] = scores
                out.write_text(json.dumps(results, indent=2))  # after every run: a stopped bench keeps its figures
                print(f"labels {fraction:>5.0%} {name:>24} seed {seed}: R² {scores[-1]:.3f} "
                      f"({time.time() - t0:.0f} s)", flush=True)  # fmt: skip
    print("\ntest R² of EF regression (mean ± sd over seeds", seeds, ")")
    print(f"{'labels':>7} " + " ".join(f"{n:>24}" for n in weights))
    for fraction in fractions:
        row = results["r2"][str(fraction)]
        print(f"{fraction:>7.0%} " + " ".join(f"{_summary(row[n]):>24}" for n in weights))
        for name in variants:
            diffs = [p - s for p, s in zip(row[name], row["scratch"], strict=True)]
            wins = sum(d > 0 for d in diffs)
            print(f"        {name}: paired R² gain {_summary(diffs)}, better in {wins}/{len(diffs)} seeds")
    out.write_text(json.dumps(results, indent=2))
    print(f"-> {out}")


if __name__ == "__main__":
    main()
