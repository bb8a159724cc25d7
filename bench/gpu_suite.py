"""Every GPU measurement in one call, within a time budget, into one result file.

GPU time is lent in short slots (minutes, all tries together), so nothing here installs, downloads or builds:
the machine needs only this checkout and its virtualenv. Steps run in order of importance; each is skipped when
the time left is below its estimate, and the result file is rewritten after every step, so a timeout still
leaves every finished figure behind.

1. Training throughput of r2plus1d_18 on 16×112×112 clips, side by side in one process: the torchvision
   video-classification reference recipe (the peer: fp16 AMP + GradScaler, SGD, same model and batch) and
   medflow's step (uint8 clips normalised on the GPU, bf16, channels_last_3d, torch.compile) with what is left to
   try: a fused AdamW, CUDA graphs (``reduce-overhead``), larger batches with the learning rate scaled, and
   ``max-autotune`` when the budget allows. The best configuration is then profiled (top ops by CUDA time).
2. Loader throughput (Zarr training views vs EchoNet-style AVI decoding) with the host's workers, to show the
   loader keeps up with the best training rate.
3. With more than one GPU: a real ``train_model`` run on every GPU through ``models.launch`` (torchrun ranks of
   ``models.rank``, DDPStrategy, nccl) beside the same run on one GPU, with the same global batch: seconds per
   epoch, the world size config.yaml records, and the test metrics of both (``--smoke`` checks it with 2 gloo
   processes on the CPU).
4. The other benchmarks' ``--device cuda`` modes as subprocesses (pixel cleaning, model checks, prediction),
   each with its own timeout.

    python bench/gpu_suite.py                       # default budget 480 s
    python bench/gpu_suite.py --budget-s 300 --out /tmp/gpu.json
    python bench/gpu_suite.py --device cpu --smoke  # a tiny run that checks the script itself, on any machine

Writes ``bench/results/gpu-suite.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import train as train_bench  # noqa: E402  (bench/train.py, this folder)

#: (name, estimated seconds, overrides of bench/train.py's options). Later ones build on the best so far.
TRAINING = (
    ("torchvision-reference", 40, {"recipe": "torchvision-reference", "precision": "16-mixed"}),
    ("medflow-last-session", 120, {"compile": True, "channels_last": True}),
    ("+fused-adamw", 60, {"compile": True, "channels_last": True, "optimizer": "adamw-fused"}),
    (
        "+cuda-graphs",
        90,
        {"compile": True, "channels_last": True, "optimizer": "adamw-fused", "compile_mode": "reduce-overhead"},
    ),
    (
        "+batch-128",
        120,
        {
            "compile": True,
            "channels_last": True,
            "optimizer": "adamw-fused",
            "compile_mode": "reduce-overhead",
            "batch_size": 128,
            "lr": 2e-4,
        },
    ),
    (
        "+max-autotune",
        240,
        {
            "compile": True,
            "channels_last": True,
            "optimizer": "adamw-fused",
            "compile_mode": "max-autotune",
            "batch_size": 128,
            "lr": 2e-4,
        },
    ),
)

#: Other benchmarks' GPU modes: (name, estimated seconds, command after the interpreter).
SUBPROCESSES = (
    ("pixels", 120, ["bench/pixels.py", "--device", "cuda", "--threads", "4", "--repeats", "2", "--skip-every-frame"]),
    ("model-checks", 90, ["bench/evaluate_gpu.py", "--clips", "8"]),
    ("predict", 90, ["bench/predict.py", "--device", "cuda"]),
)


def training_args(device: str, smoke: bool, **overrides: object) -> argparse.Namespace:
    args = train_bench.parser().parse_args([])
    args.device, args.precision, args.batch_size, args.steps, args.warmup = device, "bf16-mixed", 64, 30, 3
    if smoke:
        args.precision, args.batch_size, args.steps, args.warmup, args.frames, args.size = "32-true", 2, 1, 1, 4, 32
    for key, value in overrides.items():
        setattr(args, key, value)
    if smoke:  # compile and CUDA graphs need a GPU toolchain; the smoke run checks the wiring only
        args.compile, args.batch_size = False, 2
    return args


def release() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    torch._dynamo.reset()


class Suite:
    """Runs steps while the budget lasts and rewrites the result file after each."""

    def __init__(self, budget_s: float, out: Path):
        self.deadline = time.monotonic() + budget_s
        self.out = out
        self.result: dict = {
            "machine": {
                "platform": platform.platform(),
                "cpu_count": os.cpu_count(),
                "torch": torch.__version__,
                "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            },
            "budget_s": budget_s,
            "training": {},
            "skipped": [],
        }

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def fits(self, name: str, estimate_s: float) -> bool:
        if self.left() >= estimate_s:
            return True
        self.result["skipped"].append({"step": name, "estimate_s": estimate_s, "left_s": round(self.left())})
        self.save()
        return False

    def save(self) -> None:
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.out.write_text(json.dumps(self.result, indent=2))

    def train(self, name: str, args: argparse.Namespace) -> None:
        try:
            figures = train_bench.training_throughput(args)
        except Exception as exc:  # a configuration that fails (e.g. out of memory) is a result, not the end
            figures = {"error": f"{type(exc).__name__}: {str(exc)[:500]}"}
        finally:
            release()
        self.result["training"][name] = figures
        self.save()
        rate = figures.get("train_clips_per_s", "-")
        share = figures.get("percent_of_bound")
        print(f"{name:>24}: {rate} clips/s" + (f", {share}% of the compute bound" if share else ""), flush=True)


def ddp_figures(device: str, smoke: bool, work: Path) -> dict:
    """One run on every GPU (torchrun ranks) and one on a single GPU, same data and global batch; their figures."""
    import yaml

    from models.training import TrainConfig, train_model
    from tasks.synth.views import save_labels, write_view_dataset

    gpus = torch.cuda.device_count() if device == "cuda" else 2
    patients, frames, size, epochs, batch = (10, 4, 16, 1, 8) if smoke else (96, 16, 112, 2, 16 * gpus)
    labels = write_view_dataset(work, patients=patients, seed=0, frames=max(frames, 24), size=size)
    save_labels(labels, work / "labels.csv")
    common = {"target_col": "ef", "backbone": "r2plus1d_18" if not smoke else "cnn3d", "frames": frames,
              "epochs": epochs, "num_workers": 0 if smoke else 4, "patience": epochs,
              "accelerator": "cpu" if device == "cpu" else "gpu"}  # fmt: skip
    out: dict = {"gpus": gpus, "global_batch": batch, "patients": patients, "clip": [frames, size, size]}
    for name, devices, per_process in (("all", str(gpus), batch // gpus), ("one", "1", batch)):
        tic = time.monotonic()
        try:
            run = train_model(TrainConfig(str(work), str(work / "labels.csv"), "regression", devices=devices,
                                          batch_size=per_process, **common))  # fmt: skip
        except Exception as exc:  # a failed launch is a result to report, not the end of the suite
            out[name] = {"error": f"{type(exc).__name__}: {str(exc)[:500]}"}
            continue
        seconds = time.monotonic() - tic
        config = yaml.safe_load((run.run_dir / "config.yaml").read_text())
        out[name] = {"devices": devices, "seconds": round(seconds, 1), "seconds_per_epoch": round(seconds / epochs, 1),
                     "distributed": config["distributed"], "test": run.metrics.get("training", {})}  # fmt: skip
    if "seconds" in out.get("all", {}) and "seconds" in out.get("one", {}):
        out["speedup"] = round(out["one"]["seconds"] / out["all"]["seconds"], 2)
    return out


def best_training(training: dict) -> tuple[str, dict] | None:
    ours = {k: v for k, v in training.items() if v.get("recipe") == "medflow" and "train_clips_per_s" in v}
    return max(ours.items(), key=lambda kv: kv[1]["train_clips_per_s"]) if ours else None


def summarise(result: dict) -> dict:
    training = result["training"]
    peer = training.get("torchvision-reference", {}).get("train_clips_per_s")
    best = best_training(training)
    summary: dict = {}
    if best:
        name, figures = best
        summary.update(best=name, best_clips_per_s=figures["train_clips_per_s"])
        if "percent_of_bound" in figures:
            summary["percent_of_bound"] = figures["percent_of_bound"]
        if peer:
            summary["vs_reference"] = round(figures["train_clips_per_s"] / peer, 2)
    ddp = result.get("ddp", {})
    if "speedup" in ddp:
        summary["ddp_speedup"] = ddp["speedup"]
    loader = result.get("loader", {})
    if best and loader:
        workers = loader.get("workers")
        supply = loader.get(f"zarr_clips_per_s_{workers}w")
        if supply:
            summary["loader_supply_clips_per_s"] = supply
            summary["loader_keeps_up"] = supply >= best[1]["train_clips_per_s"]
    return summary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--budget-s", type=float, default=480.0)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, no compile: checks the script on any machine")
    ap.add_argument("--loader-workers", type=int, default=min(16, os.cpu_count() or 1))
    ap.add_argument("--out", type=Path, default=BENCH / "results" / "gpu-suite.json")
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: run with --device cpu --smoke to check the script", file=sys.stderr)
        return 2
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    suite = Suite(args.budget_s, args.out)

    for name, estimate, overrides in TRAINING:
        if suite.fits(name, estimate):
            suite.train(name, training_args(args.device, args.smoke, **overrides))
    best = best_training(suite.result["training"])
    if best and suite.fits("profile", 60):
        name = best[0]
        overrides = dict(next(o for n, _, o in TRAINING if n == name), profile=True, steps=3)
        suite.train(f"{name} (profiled)", training_args(args.device, args.smoke, **overrides))

    if suite.fits("loader", 90):
        loader_args = training_args(args.device, args.smoke)
        loader_args.workers = args.loader_workers
        loader_args.videos, loader_args.loader_epochs = (8, 1) if args.smoke else (96, 2)
        with tempfile.TemporaryDirectory() as tmp:
            suite.result["loader"] = {
                "workers": args.loader_workers,
                **train_bench.loader_throughput(loader_args, Path(tmp)),
            }
        suite.save()

    multi = torch.cuda.device_count() > 1 if args.device == "cuda" else args.smoke
    if multi and suite.fits("ddp", 30 if args.smoke else 180):
        with tempfile.TemporaryDirectory() as tmp:
            suite.result["ddp"] = ddp_figures(args.device, args.smoke, Path(tmp))
        suite.save()
        print(f"{'ddp':>24}: {json.dumps(suite.result['ddp'])[:300]}", flush=True)

    for name, estimate, command in SUBPROCESSES:
        if args.smoke or not (BENCH.parent / command[0]).exists() or not suite.fits(name, estimate):
            continue
        timeout = max(10.0, min(suite.left(), 2 * estimate))
        tic = time.monotonic()
        try:
            done = subprocess.run([sys.executable, *command], cwd=BENCH.parent, capture_output=True, text=True,
                                  timeout=timeout)  # fmt: skip
            suite.result[name] = {"rc": done.returncode, "seconds": round(time.monotonic() - tic, 1),
                                  "output_tail": (done.stdout + done.stderr)[-3000:]}  # fmt: skip
        except subprocess.TimeoutExpired:
            suite.result[name] = {"rc": "timeout", "seconds": round(timeout, 1)}
        suite.save()

    suite.result["summary"] = summarise(suite.result)
    suite.save()
    print(json.dumps(suite.result["summary"], indent=2))
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
