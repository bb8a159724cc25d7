"""Science checks on the synthetic cohort (EF lives in the motion; hazard depends on EF and age).

1. EF regression: a video network vs the frame-wise 2D baseline of the same family (R² on the test split).
   On the CPU: ``cnn3d`` vs ``framewise_cnn2d`` on small clips; on a GPU: ``r2plus1d_18`` vs ``framewise_resnet18``.
2. Survival (CoxPH head with risk-set memory, age and sex fused): test concordance (expected ≥ 0.70).

    python bench/science.py                       # CPU-sized
    python bench/science.py --gpu                 # full-size networks on a lent GPU

Writes ``bench/results/science[-gpu].json``. Peers: EchoNet-Dynamic's video vs frame argument (R²), pycox (C-index).
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.training import TrainConfig, train_model
from tasks.synth.views import save_labels, write_view_dataset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--patients", type=int, default=240)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--stride", type=int, default=4, help="every n-th frame of the 50 fps view (4: 1.28 s)")
    ap.add_argument("--size", type=int, default=32, help="spatial size on the device")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--gpu", action="store_true", help="default to the full-size pair at 112 px (bf16 on the GPU)")
    ap.add_argument(
        "--pair",
        choices=["small", "full"],
        default=None,
        help="small: cnn3d vs framewise_cnn2d (CPU default); full: r2plus1d_18 vs framewise_resnet18",
    )
    ap.add_argument("--work", type=Path, default=Path("/tmp/medflow-science"))
    ap.add_argument("--only", choices=["regression", "survival"], default=None)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    pair = args.pair or ("full" if args.gpu else "small")
    if pair == "full":
        video, frame, size = "r2plus1d_18", "framewise_resnet18", None
    else:
        video, frame, size = "cnn3d", "framewise_cnn2d", args.size

    dataset = args.work / f"views-{args.patients}-{args.seed}"
    if not (dataset / "manifest.parquet").exists():
        t0 = time.time()
        labels = write_view_dataset(dataset, args.patients, args.seed, frames=80)
        save_labels(labels, dataset / "labels.csv")
        print(f"wrote {args.patients} synthetic patients in {time.time() - t0:.0f} s")
    common = dict(dataset=str(dataset), labels=str(dataset / "labels.csv"), frames=args.frames, stride=args.stride,
                  size=size, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                  num_workers=args.workers, test_clips=4, patience=args.epochs, lr=1e-3)  # fmt: skip
    results: dict = {
        "machine": platform.processor() or platform.machine(),
        "args": {k: str(v) for k, v in vars(args).items()},
    }
    if args.only in (None, "regression"):
        for name, backbone in (("video", video), ("framewise", frame)):
            t0 = time.time()
            r = train_model(TrainConfig(task="regression", target_col="ef", backbone=backbone, **common))
            results[f"ef_r2_{name}"] = r.metrics["training"]["r2"]
            results[f"ef_mae_{name}"] = r.metrics["training"]["mae"]
            results[f"seconds_{name}"] = round(time.time() - t0, 1)
            print(f"EF regression {backbone:>20}: R² {r.metrics['training']['r2']:.3f}  "
                  f"MAE {r.metrics['training']['mae']:.1f}  ({time.time() - t0:.0f} s)")  # fmt: skip
    if args.only in (None, "survival"):
        t0 = time.time()
        r = train_model(TrainConfig(task="survival", start_col="study_date", end_col="followup_date", event_col="event",
                                    head="coxph", tabular=["age", "sex"], backbone=video, **common))  # fmt: skip
        results["survival_concordance"] = r.metrics["training"].get("concordance")
        results["seconds_survival"] = round(time.time() - t0, 1)
        print(
            f"survival CoxPH {video}: test concordance {results['survival_concordance']:.3f} ({time.time() - t0:.0f} s)"
        )
    if "ef_r2_video" in results:
        verdict = "video beats frame-wise" if results["ef_r2_video"] > results["ef_r2_framewise"] else "NOT better"
        print(f"video R² {results['ef_r2_video']:.3f} vs frame-wise R² {results['ef_r2_framewise']:.3f}: {verdict}")
    out = Path(__file__).parent / "results" / f"science-{pair}{'-gpu' if args.gpu else ''}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"-> {out}")


if __name__ == "__main__":
    main()
