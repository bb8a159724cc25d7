"""Model checks (occlusion + integrated-gradients randomisation test + OOD) of a video network on GPU vs CPU.

The network is torchvision's r2plus1d_18 with random weights (nothing downloaded) and a one-output head;
clips are random uint8 (N, 16, 112, 112). Usage: ``python bench/evaluate_gpu.py [--clips 8]``; writes
``bench/results/evaluate_gpu.json``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torchvision.models.video import r2plus1d_18

from tasks.evaluate.model_checks import ModelAdapter, check_model
from tasks.evaluate.options import EvaluationOptions

RESULTS = Path(__file__).resolve().parents[1] / "bench" / "results"


def prepare(clips: torch.Tensor) -> torch.Tensor:
    return clips.float().div(255.0).unsqueeze(1).expand(-1, 3, -1, -1, -1)


def run(device: str, clips: torch.Tensor, options: EvaluationOptions) -> float:
    torch.manual_seed(0)
    net = r2plus1d_18(num_classes=2).eval()
    adapter = ModelAdapter(
        net, prepare, lambda out: out.softmax(1)[:, 1], lambda out: 1 - out.softmax(1).amax(1), torch.device(device)
    )
    start = time.perf_counter()
    result = check_model(adapter, clips, options)
    if device == "cuda":
        torch.cuda.synchronize()
    assert "saliency_spearman" in result.metrics and "auroc_ood" in result.metrics
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--devices", default="cuda,cpu")
    parser.add_argument("--output", default=str(RESULTS / "evaluate_gpu.json"))
    args = parser.parse_args()
    clips = torch.randint(0, 256, (args.clips, 16, 112, 112), dtype=torch.uint8)
    options = EvaluationOptions(saliency_clips=2)
    out = {"clips": args.clips, "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None}
    for device in args.devices.split(","):
        if device == "cuda" and not torch.cuda.is_available():
            continue
        out[f"{device}_s"] = run(device, clips, options)
        print(f"model checks on {device}: {out[f'{device}_s']:.1f} s for {args.clips} clips")
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
