"""Training throughput (r2plus1d_18, 16×112×112 clips) and data-loader throughput (Zarr views vs MJPEG AVI).

Peer: EchoNet-Dynamic, which decodes the whole AVI with ``cv2.VideoCapture`` for every sample and trains
r2plus1d_18 with DataParallel. One training step of r2plus1d_18 at 16×112×112 is ~242 GFLOP per clip
(forward + backward; measured here with torch's FlopCounterMode), so a GPU's dense bf16 peak bounds clips/s.

    python bench/train.py                                            # this CPU
    python bench/train.py --device cuda --precision bf16-mixed --steps 50 --batch-size 32
    python bench/train.py --device cuda --recipe torchvision-reference --batch-size 64   # the peer
    python bench/gpu_suite.py                     # every GPU figure in one call (configurations side by side)

Targets: loader clips/s per worker × workers ≥ GPU clips/s; ≥ 40% of the compute bound on an H100.
Writes ``bench/results/train-<device>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.datamodule import ClipDataset, ClipSpec, worker_init
from models.heads import FusionHead
from models.module import InputSpec, prepare_clips
from models.networks import build_backbone
from tasks.synth.views import write_view_dataset

PEAK_BF16_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0, "L40S": 362.0, "A10": 125.0}
NOMINAL_GFLOP_PER_CLIP = 242.0


def peak_tflops(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def _optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    if name == "sgd":  # the torchvision reference recipe's optimiser
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=1e-4)
    return torch.optim.AdamW(params, lr=lr, fused=name == "adamw-fused")


def _medflow_step(args: argparse.Namespace, device: torch.device):
    """medflow's training step: uint8 clips on the device, normalised and augmented there, bf16 autocast."""
    backbone = build_backbone(args.backbone)
    head = FusionHead(backbone.out_features, 1)
    model = torch.nn.ModuleDict({"backbone": backbone, "head": head}).to(device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    opt = _optimizer(args.optimizer, model.parameters(), args.lr)
    spec = InputSpec(mean=0.15, std=0.2)
    clips = torch.randint(
        0, 255, (args.batch_size, args.frames, args.size, args.size), dtype=torch.uint8, device=device
    )
    target = torch.randn(args.batch_size, device=device)
    bf16 = args.precision == "bf16-mixed"

    def forward(x: torch.Tensor) -> torch.Tensor:
        return model["head"](model["backbone"](x)).view(-1)

    fwd = torch.compile(forward, mode=args.compile_mode) if args.compile else forward

    def step() -> None:
        x = prepare_clips(clips, spec, augment=True)
        if args.channels_last:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            loss = torch.nn.functional.mse_loss(fwd(x).float(), target)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def _reference_step(args: argparse.Namespace, device: torch.device):
    """The torchvision video-classification reference recipe's step (references/video_classification/train.py):
    the same r2plus1d_18, float clips already normalised by the CPU transforms, fp16 autocast with a GradScaler,
    SGD with momentum, no compile, default memory format. Clips sit on the device so loading is not measured."""
    from torchvision.models.video import r2plus1d_18

    model = r2plus1d_18(weights=None, num_classes=400).to(device)
    opt = _optimizer("sgd", model.parameters(), 0.64 * args.batch_size / 1024)
    scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda")
    clips = torch.randn(args.batch_size, 3, args.frames, args.size, args.size, device=device)
    target = torch.randint(0, 400, (args.batch_size,), device=device)
    criterion = torch.nn.CrossEntropyLoss()

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.float16 if device.type == "cuda" else torch.bfloat16):
            loss = criterion(model(clips), target)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()

    return step


def _profile(step, device: torch.device, steps: int = 3, top: int = 15) -> list[dict]:
    """The ops with the most self time over ``steps`` steps (CUDA time on a GPU), as rows of a table."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with profile(activities=activities) as prof:
        for _ in range(steps):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
    attr = "self_device_time_total" if device.type == "cuda" else "self_cpu_time_total"
    events = sorted(prof.key_averages(), key=lambda e: getattr(e, attr, 0.0), reverse=True)[:top]
    total = sum(getattr(e, attr, 0.0) for e in prof.key_averages()) or 1.0
    return [{"op": e.key, "self_ms": round(getattr(e, attr, 0.0) / 1e3 / steps, 2),
             "share": round(getattr(e, attr, 0.0) / total, 3), "calls": e.count // steps} for e in events]  # fmt: skip


def training_throughput(args: argparse.Namespace) -> dict:
    device = torch.device(args.device)
    step = _reference_step(args, device) if args.recipe == "torchvision-reference" else _medflow_step(args, device)
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    gflop_per_clip = counter.get_total_flops() / args.batch_size / 1e9
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    t0 = time.perf_counter()
    for _ in range(args.warmup):  # includes torch.compile and cuDNN autotuning
        step()
    sync()
    warmup_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(args.steps):
        step()
    sync()
    seconds = time.perf_counter() - t0
    clips_per_s = args.steps * args.batch_size / seconds
    peak = peak_tflops(device)
    out = {
        "recipe": args.recipe,
        "backbone": args.backbone,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else (platform.processor() or "cpu"),
        "precision": args.precision
        if args.recipe == "medflow"
        else ("fp16 autocast + GradScaler" if device.type == "cuda" else "bf16 autocast (CPU)"),
        "batch_size": args.batch_size,
        "clip": [args.frames, args.size, args.size],
        "steps": args.steps,
        "compile": args.compile and args.recipe == "medflow",
        "compile_mode": args.compile_mode,
        "channels_last": args.channels_last and args.recipe == "medflow",
        "optimizer": args.optimizer if args.recipe == "medflow" else "sgd",
        "warmup_s": round(warmup_s, 1),
        "train_clips_per_s": round(clips_per_s, 2),
        "gflop_per_clip_measured": round(gflop_per_clip, 1),
        "achieved_tflops": round(clips_per_s * gflop_per_clip / 1e3, 2),
    }
    if peak:
        bound = peak * 1e3 / NOMINAL_GFLOP_PER_CLIP
        out.update(
            peak_bf16_tflops=peak,
            compute_bound_clips_per_s=round(bound),
            percent_of_bound=round(100 * clips_per_s / bound, 1),
        )
    if device.type == "cuda":
        out["max_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 1)
    if args.profile:
        out["profile"] = _profile(step, device)
    return out


class EchoNetAviDataset(Dataset):
    """EchoNet-Dynamic's way: decode the whole AVI with cv2.VideoCapture, then cut one random clip."""

    def __init__(self, paths: list[Path], frames: int):
        self.paths, self.frames = paths, frames

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        capture = cv2.VideoCapture(str(self.paths[i]))
        frames = []
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(frame)  # EchoNet keeps all 3 channels as float
        capture.release()
        video = np.stack(frames).astype(np.float32)
        start = np.random.randint(0, max(len(video) - self.frames, 0) + 1)
        return torch.from_numpy(video[start : start + self.frames])


def loader_throughput(args: argparse.Namespace, work: Path) -> dict:
    root = work / "views"
    write_view_dataset(root, args.videos, seed=0, frames=args.view_frames)
    import pandas as pd
    import zarr

    manifest = pd.read_parquet(root / "manifest.parquet")
    keys = manifest["view_key"].tolist()
    group = zarr.open_group(root / "store.zarr", mode="r")
    avi_dir = work / "avi"
    avi_dir.mkdir()
    paths = []
    for key in keys:
        video = group[key][...]
        path = avi_dir / f"{len(paths):05d}.avi"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 50, (video.shape[2], video.shape[1]))
        for frame in video:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR))
        writer.release()
        paths.append(path)
    n = len(keys)
    zarr_ds = ClipDataset(root / "store.zarr", keys, {}, np.zeros((n, 0), np.float32), np.zeros(n, np.int64),
                          ClipSpec(frames=args.frames), mode="random")  # fmt: skip
    avi_ds = EchoNetAviDataset(paths, args.frames)
    results = {"videos": n, "view_frames": args.view_frames, "clip_frames": args.frames}
    for workers in sorted({1, args.workers}):
        for name, ds in (("zarr", zarr_ds), ("echonet_avi", avi_ds)):
            loader = DataLoader(
                ds, batch_size=8, shuffle=True, num_workers=workers, worker_init_fn=worker_init, persistent_workers=True
            )  # as in training: workers start once
            next(iter(loader))  # start-up outside the timing
            t0 = time.perf_counter()
            count = 0
            for _ in range(args.loader_epochs):
                for batch in loader:
                    count += batch["video"].shape[0] if isinstance(batch, dict) else batch.shape[0]
            rate = count / (time.perf_counter() - t0)
            results[f"{name}_clips_per_s_{workers}w"] = round(rate, 1)
            results[f"{name}_clips_per_s_per_worker_{workers}w"] = round(rate / workers, 1)
    return results


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="32-true", choices=["32-true", "bf16-mixed"])
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--backbone", default="r2plus1d_18")
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--compile-mode", default=None, help="torch.compile mode, e.g. reduce-overhead (CUDA graphs)")
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--optimizer", default="adamw", choices=["adamw", "adamw-fused", "sgd"])
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument(
        "--recipe",
        default="medflow",
        choices=["medflow", "torchvision-reference"],
        help="medflow's step, or the torchvision video-classification reference recipe (the peer)",
    )
    ap.add_argument("--profile", action="store_true", help="add the top ops by self time to the result")
    ap.add_argument("--videos", type=int, default=48)
    ap.add_argument("--view-frames", type=int, default=100)
    ap.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    ap.add_argument("--loader-epochs", type=int, default=2)
    ap.add_argument("--skip-loader", action="store_true")
    ap.add_argument("--skip-train", action="store_true")
    return ap


def main() -> None:
    args = parser().parse_args()
    torch.backends.cudnn.benchmark = True
    result: dict = {
        "machine": {"cpu_count": os.cpu_count(), "platform": platform.platform(), "torch": str(torch.__version__)}
    }
    if not args.skip_train:
        result["training"] = training_throughput(args)
        t = result["training"]
        line = (
            f"training {t['backbone']} {t['clip']} on {t['device']} ({t['precision']}): {t['train_clips_per_s']} "
            f"clips/s, {t['gflop_per_clip_measured']} GFLOP/clip measured (nominal {NOMINAL_GFLOP_PER_CLIP:.0f})"
        )
        if "percent_of_bound" in t:
            line += f", {t['percent_of_bound']}% of the {t['compute_bound_clips_per_s']} clips/s compute bound"
        print(line)
    if not args.skip_loader:
        with tempfile.TemporaryDirectory() as tmp:
            result["loader"] = loader_throughput(args, Path(tmp))
        lo = result["loader"]
        for w in sorted({1, args.workers}):
            print(f"loader {w} worker(s): Zarr views {lo[f'zarr_clips_per_s_{w}w']} clips/s  vs  EchoNet AVI decode "
                  f"{lo[f'echonet_avi_clips_per_s_{w}w']} clips/s")  # fmt: skip
        if "training" in result:
            supply = lo[f"zarr_clips_per_s_per_worker_{args.workers}w"] * args.workers
            result["loader_keeps_up"] = supply >= result["training"]["train_clips_per_s"]
            verdict = "loader is not the bottleneck" if result["loader_keeps_up"] else "LOADER IS THE BOTTLENECK"
            print(f"loader supply {supply:.0f} clips/s with {args.workers} workers vs training "
                  f"{result['training']['train_clips_per_s']} clips/s: {verdict}")  # fmt: skip
    out = Path(__file__).parent / "results" / f"train-{args.device.split(':')[0]}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"-> {out}")


if __name__ == "__main__":
    main()
