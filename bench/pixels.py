"""Seconds per cine for burned-in text removal: composite detection (medflow) vs OCR on every frame (naive).

On ``color3d_jpeg_baseline.dcm`` (120 frames, 480x640, YBR_FULL_422 JPEG baseline) the whole cleaning runs
(decode, scan region, text detection, verification, JPEG re-encode) once with detection on temporal composites
plus sampled frames, and once with ``ocr_every_frame`` (the naive way), in the same process. Recall is measured
on the hand-labelled boxes of the file (``tests/data/pixels/real_labels.json``).

One CPU core, as in the issue: ``taskset -c 0 python bench/pixels.py --threads 1`` (``--pin`` does the same
from inside). On a GPU machine: ``python bench/pixels.py --device cuda`` also reports cines per second.
Writes ``bench/results/pixels-<device>-<engine>.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
FILE = "color3d_jpeg_baseline.dcm"


def clean_once(options, path: str) -> tuple[float, dict, object]:
    """Read (untimed), then time clean_pixels on a fresh dataset; return seconds, report and dataset."""
    import pydicom

    from tasks.pixels import clean_pixels

    ds = pydicom.dcmread(path)
    tic = time.perf_counter()
    result = clean_pixels(ds, options)
    return time.perf_counter() - tic, result.report, ds


def recall_of(report: dict, ds, labels: list[tuple[int, int, int, int]]) -> float:
    from tasks.pixels.boxes import paint
    from tasks.pixels.metrics import recalled
    from tasks.pixels.region import regions_from_header

    shape = (int(ds.Rows), int(ds.Columns))
    region = regions_from_header(ds, shape)
    mask = np.zeros(shape, bool) if region is None else ~region
    paint(mask, [tuple(b) for b in report["boxes"]])
    return float(np.mean(recalled(mask, labels)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--engine", default="easyocr", help="easyocr or rapidocr")
    parser.add_argument("--canvas", type=int, default=None, help="detector canvas (default: PixelOptions)")
    parser.add_argument("--precision", default="auto", help="detector arithmetic: auto, bf16 or fp32")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 = one core, as in the issue)")
    parser.add_argument("--pin", action="store_true", help="pin this process to the first allowed CPU")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of the composite pipeline")
    parser.add_argument("--skip-every-frame", action="store_true")
    args = parser.parse_args()

    if args.pin:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    import torch
    from pydicom.data import get_testdata_file

    from tasks.pixels import PixelOptions
    from tasks.pixels.detector import get_detector

    torch.set_num_threads(args.threads)
    path = get_testdata_file(FILE)
    labels_all = json.loads((ROOT / "tests/data/pixels/real_labels.json").read_text())["files"][FILE]["labels"]
    labels = [tuple(lab["box"]) for lab in labels_all]
    extra = {"precision": args.precision} | ({} if args.canvas is None else {"canvas_size": args.canvas})
    options = PixelOptions(device=args.device, ocr_engine=args.engine, **extra)
    tic = time.perf_counter()
    get_detector(options.ocr_engine, options.device, options.canvas_size, options.precision)
    load_s = time.perf_counter() - tic

    clean_once(options, path)  # warm-up (first CRAFT call allocates)
    runs = [clean_once(options, path) for _ in range(args.repeats)]
    seconds = [r[0] for r in runs]
    report, ds = runs[-1][1], runs[-1][2]
    result = {
        "file": FILE,
        "frames": report["frames"],
        "engine": args.engine,
        "canvas_size": options.canvas_size,
        "precision": report.get("detector_precision", "fp32"),
        "device": args.device,
        "machine": {
            "platform": platform.platform(),
            "cpus_allowed": len(os.sched_getaffinity(0)),
            "torch_threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() and args.device != "cpu" else None,
        },
        "detector_load_s": round(load_s, 2),
        "composite": {
            "seconds_per_cine": round(float(np.median(seconds)), 3),
            "runs": [round(s, 3) for s in seconds],
            "recall": recall_of(report, ds, labels),
            "boxes": len(report["boxes"]),
            "verify_passes": report["verify_passes"],
            "clean_s": report["clean_s"],
            "encode_s": report["encode_s"],
        },
    }
    result["cines_per_second"] = round(1.0 / result["composite"]["seconds_per_cine"], 3)
    print(
        f"composite   {result['composite']['seconds_per_cine']:.2f} s/cine  recall {result['composite']['recall']:.3f}"
        f"  ({args.engine} {result['precision']}, {args.device}, {torch.get_num_threads()} thread(s))"
    )
    if not args.skip_every_frame:
        every = PixelOptions(device=args.device, ocr_engine=args.engine, ocr_every_frame=True, **extra)
        sec, rep, ds_every = clean_once(every, path)
        result["every_frame"] = {
            "seconds_per_cine": round(sec, 3),
            "recall": recall_of(rep, ds_every, labels),
            "boxes": len(rep["boxes"]),
        }
        result["speedup"] = round(sec / result["composite"]["seconds_per_cine"], 1)
        print(
            f"every-frame {sec:.2f} s/cine  recall {result['every_frame']['recall']:.3f}"
            f"  -> composite is {result['speedup']}x faster"
        )
    out = ROOT / "bench" / "results" / f"pixels-{args.device}-{args.engine}-{result['precision']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
