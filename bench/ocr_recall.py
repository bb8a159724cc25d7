"""Recall and over-masking of burned-in text removal, easyocr (CRAFT) vs RapidOCR (PP-OCRv4), side by side.

Labelled set: seeded synthetic ultrasound cines and stills with PHI-like text inside and outside the sector
(``tasks.pixels.synthetic``), plus the hand-labelled pydicom-data ultrasound files (``tests/data/pixels``).

- recall: share of labelled PHI boxes at least 95% masked (target 100%), and of all labelled boxes (machine text
  and single-letter markers too);
- over-masking: share of scan-region pixels masked by text masking that held no labelled text (target <= 2%).

Usage: ``python bench/ocr_recall.py [--threads 1] [--quick]``; writes ``bench/results/ocr_recall.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

LABELS = ROOT / "tests" / "data" / "pixels" / "real_labels.json"
CONFIGS = {
    "easyocr-320": dict(ocr_engine="easyocr", canvas_size=320),
    "easyocr-480": dict(ocr_engine="easyocr", canvas_size=480),
    "easyocr-640": dict(ocr_engine="easyocr", canvas_size=640, precision="fp32", runtime="torch"),
    "easyocr-640-openvino": dict(ocr_engine="easyocr", canvas_size=640, precision="fp32", runtime="openvino"),
    "easyocr-640-bf16": dict(ocr_engine="easyocr", canvas_size=640, precision="bf16"),
    "easyocr-640-bf16-loose": dict(ocr_engine="easyocr", canvas_size=640, precision="bf16", refine_boxes=False),
    "rapidocr": dict(ocr_engine="rapidocr", canvas_size=640),
}


def labelled_set(quick: bool):
    """(name, dataset, labels, kinds, phi flags) for synthetic and real items."""
    import pydicom
    from pydicom.data import get_testdata_file

    from tasks.pixels.synthetic import make_item

    rng = np.random.default_rng(20261126)
    items = []
    n = 3 if quick else 8
    for i in range(n):
        for frames in (12, 1):
            item = make_item(rng, frames=frames, colour=i % 2 == 0, texts=6)
            ds = item.dataset(with_regions=i % 4 < 2)
            n = len(item.boxes)  # every synthetic string is PHI-like (names, ids, dates, times, institutions)
            name = f"synthetic-{i}-{'cine' if frames > 1 else 'still'}"
            items.append((name, ds, item.boxes, ["text"] * n, [True] * n))
    real = json.loads(LABELS.read_text())["files"]
    for name, entry in real.items():
        ds = pydicom.dcmread(get_testdata_file(name))
        boxes = [tuple(lab["box"]) for lab in entry["labels"]]
        kinds, phi = [lab["kind"] for lab in entry["labels"]], [lab["phi"] for lab in entry["labels"]]
        items.append((name, ds, boxes, kinds, phi))
    return items


def run_config(config: dict, items, device: str = "cpu") -> dict:
    from tasks.errors import PixelError
    from tasks.pixels import PixelOptions
    from tasks.pixels.clean import clean_frames
    from tasks.pixels.codec import decode
    from tasks.pixels.metrics import over_masking, recalled

    options = PixelOptions(device=device, **config)
    tic = time.perf_counter()
    detector = options.detector()
    load_s = time.perf_counter() - tic
    rows, hits, kinds_all, phi_all, seconds = [], [], [], [], []
    for name, ds, labels, kinds, phi in items:
        pixels = decode(ds.copy(), max_bytes=options.max_pixel_bytes)
        tic = time.perf_counter()
        try:
            outcome = clean_frames(pixels, ds, detector, options)
        except PixelError as err:
            rows.append({"item": name, "error": str(err.reason)})
            hits += [False] * len(labels)
            kinds_all += kinds
            phi_all += phi
            continue
        seconds.append(time.perf_counter() - tic)
        got = recalled(outcome.mask, labels)
        hits += got
        kinds_all += kinds
        phi_all += phi
        rows.append(
            {
                "item": name,
                "frames": int(pixels.frames.shape[0]),
                "labels": len(labels),
                "recalled": int(sum(got)),
                "missed": [list(map(int, b)) for b, ok in zip(labels, got, strict=True) if not ok],
                "over_masking": round(over_masking(outcome.text_mask, outcome.region.mask, labels), 4),
                "region_method": outcome.region.method,
                "seconds": round(seconds[-1], 3),
            }
        )
    text_hits = [h for h, k in zip(hits, kinds_all, strict=True) if k == "text"]
    phi_hits = [h for h, p in zip(hits, phi_all, strict=True) if p]
    return {
        "recall_phi": round(float(np.mean(phi_hits)), 4),
        "phi_boxes": len(phi_hits),
        "recall": round(float(np.mean(hits)), 4),
        "recall_text_only": round(float(np.mean(text_hits)), 4),
        "labelled_boxes": len(hits),
        "missed_boxes": int(len(hits) - sum(hits)),
        "over_masking_mean": round(float(np.mean([r["over_masking"] for r in rows if "over_masking" in r])), 4),
        "over_masking_max": round(float(np.max([r["over_masking"] for r in rows if "over_masking" in r])), 4),
        "seconds_total": round(float(np.sum(seconds)), 2),
        "detector_load_s": round(load_s, 2),
        "items": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--quick", action="store_true", help="a smaller synthetic set")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "ocr_recall.json")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    items = labelled_set(args.quick)
    results = {}
    for key in args.configs.split(","):
        try:
            results[key] = run_config(CONFIGS[key], items, args.device)
        except Exception as err:  # a missing optional engine is reported, not fatal
            results[key] = {"error": type(err).__name__}
        r = results[key]
        if "recall" in r:
            print(
                f"{key:16s} PHI recall {r['recall_phi']:.3f} of {r['phi_boxes']}, all boxes {r['recall']:.3f} "
                f"(text {r['recall_text_only']:.3f}, missed {r['missed_boxes']}"
                f"/{r['labelled_boxes']})  over-masking mean {r['over_masking_mean']:.4f} max "
                f"{r['over_masking_max']:.4f}  {r['seconds_total']:.1f}s"
            )
        else:
            print(f"{key:14s} {r}")
    out = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "threads": args.threads,
            "device": args.device,
        },
        "set": {"items": len(items), "boxes": sum(len(i[2]) for i in items)},
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
