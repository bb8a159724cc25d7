"""Seconds per cine for burned-in text removal: composite detection (medflow) vs OCR on every frame (naive).

On ``color3d_jpeg_baseline.dcm`` (120 frames, 480x640, YBR_FULL_422 JPEG baseline) the whole cleaning runs
(decode, scan region, text detection, verification, JPEG re-encode) once with detection on temporal composites
plus sampled frames, and once with ``ocr_every_frame`` (the naive way), in the same process. Recall is measured
on the hand-labelled boxes of the file (``tests/data/pixels/real_labels.json``).

One CPU core, as in the issue: ``taskset -c 0 python bench/pixels.py --threads 1`` (``--pin`` does the same
from inside). On a GPU machine: ``python bench/pixels.py --device cuda`` also reports cines per second.
Writes ``bench/results/pixels-<device>-<engine>.json``.

``--study 20`` adds an echo study of 20 cines (copies of the real cine with distinct UIDs, one device): seconds
for the first cine and per additional cine with layout reuse (``tasks.pixels.layout``), beside, in the same run,
today's per-cine path (full detection on every cine) and easyocr on every frame; ``--baseline-cines 3`` (and
``--every-frame-cines``) runs those two on fewer cines (their cost per cine does not depend on the study).
``--ct-slices 200`` adds a CT series built from a real slice (shifted per slice, as anatomy moves) with a name
burned into every tenth slice: milliseconds per slice for the text check and masking, and the share of burned-in
glyph pixels changed in the written slices; ``--mr-slices`` the same for an MR series. ``--labelled`` adds PHI
recall and over-masking on the labelled set (``bench/ocr_recall.py``) with the same detector.

The figures for issue 19, on a quiet core: ``taskset -c 1 python bench/pixels.py --threads 1 --repeats 0
--study 20 --baseline-cines 3 --ct-slices 200 --mr-slices 30 --labelled``.
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


def study(options, cines: int, baseline: int, every: int) -> dict:
    """Seconds for the first and each additional cine of a one-device study: layout reuse on ``cines`` cines,
    today's per-cine path (full detection on every cine) on ``baseline`` and easyocr on every frame on ``every``
    cines (the slow paths on fewer cines: their per-cine cost does not depend on the study)."""
    from dataclasses import replace

    from tasks.pixels.layout import LayoutCache

    out: dict = {}
    modes = {
        "reuse": (options, cines),
        "per-cine": (options, baseline),
        "every-frame": (replace(options, ocr_every_frame=True), every),
    }
    for mode, (opts, count) in modes.items():
        if not count:
            continue
        seconds, recalls, states = run_study(opts, count, LayoutCache() if mode == "reuse" else None)
        extra = seconds[1:] or seconds
        out[mode] = {
            "cines": count,
            "first_cine_s": round(seconds[0], 3),
            "per_additional_cine_s": round(float(np.median(extra)), 3),
            "per_additional_cine_mean_s": round(float(np.mean(extra)), 3),
            "study_s": round(float(np.sum(seconds)), 2),
            "recall_min": min(recalls),
            "layouts": {s: states.count(s) for s in set(states)},
        }
        extra_s = out[mode]["per_additional_cine_s"]
        print(
            f"study {mode:11s} {count} cines: first {seconds[0]:.2f} s, per additional cine {extra_s:.2f} s "
            f"(median), recall {min(recalls):.3f}, layouts {out[mode]['layouts']}",
            flush=True,
        )
    if "reuse" in out and "per-cine" in out:
        per_cine = out["per-cine"]["per_additional_cine_s"]
        out["reuse_speedup"] = round(per_cine / out["reuse"]["per_additional_cine_s"], 1)
    if "reuse" in out and "every-frame" in out:
        every = out["every-frame"]["per_additional_cine_s"]
        out["reuse_vs_every_frame"] = round(every / out["reuse"]["per_additional_cine_s"], 1)
    return out


def run_study(options, cines: int, cache) -> tuple[list[float], list[float], list[str]]:
    """Clean ``cines`` copies of the real cine (one study, distinct series and instance UIDs); per cine the
    seconds of clean_pixels, the recall on its written pixels and its layout state."""
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    from tasks.pixels import clean_pixels

    path = get_testdata_file(FILE)
    labels = [tuple(lab["box"]) for lab in _labels(FILE)]
    seconds, recalls, states = [], [], []
    study_uid = generate_uid()
    for _ in range(cines):
        ds = pydicom.dcmread(path)
        before = ds.pixel_array[0]
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID = study_uid, generate_uid(), generate_uid()
        tic = time.perf_counter()
        report = clean_pixels(ds, options, cache).report
        seconds.append(time.perf_counter() - tic)
        recalls.append(written_recall(ds, before, labels))
        states.append(report["layout"] if cache is not None else "every-frame" if options.ocr_every_frame else "none")
    return seconds, recalls, states


def labelled(options) -> dict:
    """PHI recall and over-masking on the labelled set (``bench/ocr_recall.py``) with this run's detector."""
    sys.path.insert(0, str(ROOT / "bench"))
    from ocr_recall import labelled_set, run_config

    config = {"ocr_engine": options.ocr_engine, "canvas_size": options.canvas_size, "precision": options.precision,
              "runtime": options.runtime}  # fmt: skip
    result = run_config(config, labelled_set(quick=False), options.device)
    result = {k: v for k, v in result.items() if k != "items"} | {"items": len(result["items"])}
    print(
        f"labelled set: PHI recall {result['recall_phi']:.3f} of {result['phi_boxes']} boxes, all boxes "
        f"{result['recall']:.3f}, over-masking mean {100 * result['over_masking_mean']:.2f}% "
        f"max {100 * result['over_masking_max']:.2f}%",
        flush=True,
    )
    return result


def written_recall(ds, before: np.ndarray, labels: list) -> float:
    """Recall on the written pixels: the cleaned dataset saved, re-read, compared with the input frame."""
    import io

    import pydicom

    from tasks.pixels.metrics import removed_in_pixels

    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    buf.seek(0)
    return float(np.mean(removed_in_pixels(before, pydicom.dcmread(buf).pixel_array[0], labels)))


def series(options, name: str, slices: int, every: int = 10) -> dict:
    """Milliseconds per slice of the text check and masking on a series of ``slices`` shifted copies of a real
    slice, a name burned into every ``every``-th; glyph pixels changed in the written slices."""
    import io

    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    from tasks.pixels import clean_or_check
    from tasks.pixels.synthetic import burn_in

    series_uid = generate_uid()
    base = pydicom.dcmread(get_testdata_file(name))
    original = base.pixel_array.copy()
    seconds, glyphs, masked = [], [], 0
    for k in range(slices):
        ds = pydicom.dcmread(get_testdata_file(name))
        shift = int(6 * np.sin(k / 9))
        ds.PixelData = np.roll(original, (shift, -shift), axis=(0, 1)).tobytes()
        ds.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
        ds.SeriesInstanceUID, ds.SOPInstanceUID = series_uid, generate_uid()
        ink = burn_in(ds, f"DOE^JOHN {k:04d}", (30, 40), 0.5) if k % every == 0 else None
        before = ds.pixel_array.copy()
        tic = time.perf_counter()
        result = clean_or_check(ds, "auto", options)
        seconds.append(time.perf_counter() - tic)
        if result is not None:
            masked += 1
        if ink is not None:
            buf = io.BytesIO()
            ds.save_as(buf, enforce_file_format=True)
            buf.seek(0)
            glyphs.append(float((pydicom.dcmread(buf).pixel_array != before)[ink].mean()))
    out = {
        "file": name,
        "slices": slices,
        "burned_slices": len(glyphs),
        "ms_per_slice": round(1000 * float(np.mean(seconds)), 1),
        "first_slice_ms": round(1000 * seconds[0], 1),
        "ms_per_later_slice": round(1000 * float(np.mean(seconds[1:] or seconds)), 1),
        "series_s": round(float(np.sum(seconds)), 2),
        "slices_masked": masked,
        "glyph_pixels_changed_min": min(glyphs) if glyphs else None,
    }
    print(f"series {name}: {out['ms_per_later_slice']} ms per later slice, {out['ms_per_slice']} ms/slice overall "
          f"({slices} slices, first {out['first_slice_ms']} ms), glyph pixels changed >= "
          f"{out['glyph_pixels_changed_min']}", flush=True)  # fmt: skip
    return out


def machine(torch, args) -> dict:
    """What the figures were measured on."""
    from tasks.pixels.detector import native_bf16_cpu

    return {
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpu_native_bf16": native_bf16_cpu(),
        "cpus_allowed": len(os.sched_getaffinity(0)),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() and args.device != "cpu" else None,
    }


def _cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor()
    return next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "")


def _labels(name: str) -> list[dict]:
    return json.loads((ROOT / "tests/data/pixels/real_labels.json").read_text())["files"][name]["labels"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--engine", default="easyocr", help="easyocr or rapidocr")
    parser.add_argument("--canvas", type=int, default=None, help="detector canvas (default: PixelOptions)")
    parser.add_argument("--precision", default="auto", help="detector arithmetic: auto, bf16 or fp32")
    parser.add_argument("--runtime", default="auto", help="detector runtime: auto, torch or openvino")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 = one core, as in the issue)")
    parser.add_argument("--pin", action="store_true", help="pin this process to the first allowed CPU")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of the composite pipeline (0: skip it)")
    parser.add_argument("--skip-every-frame", action="store_true")
    parser.add_argument("--study", type=int, default=0, help="cines in a one-device echo study (0: skip)")
    parser.add_argument(
        "--baseline-cines",
        type=int,
        default=None,
        help="cines of the study run through today's per-cine path and easyocr on every frame (default: --study)",
    )
    parser.add_argument(
        "--every-frame-cines", type=int, default=None, help="cines run with easyocr on every frame (default: baseline)"
    )
    parser.add_argument("--labelled", action="store_true", help="recall and over-masking on the labelled set")
    parser.add_argument("--ct-slices", type=int, default=0, help="slices in the CT series (0: skip)")
    parser.add_argument("--mr-slices", type=int, default=0, help="slices in the MR series (0: skip)")
    args = parser.parse_args()

    if args.pin:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    import torch
    from pydicom.data import get_testdata_file

    from tasks.pixels import PixelOptions

    torch.set_num_threads(args.threads)
    path = get_testdata_file(FILE)
    labels_all = json.loads((ROOT / "tests/data/pixels/real_labels.json").read_text())["files"][FILE]["labels"]
    labels = [tuple(lab["box"]) for lab in labels_all]
    import pydicom

    first_frame = pydicom.dcmread(path).pixel_array[0]  # recall is judged on the written pixels against it
    extra = {"precision": args.precision, "runtime": args.runtime}
    extra |= {} if args.canvas is None else {"canvas_size": args.canvas}
    options = PixelOptions(device=args.device, ocr_engine=args.engine, **extra)
    tic = time.perf_counter()
    detector = options.detector()
    load_s = time.perf_counter() - tic
    runtime = getattr(detector, "runtime", "onnxruntime")
    print(
        f"detector {args.engine}, {getattr(detector, 'precision', 'fp32')} arithmetic, {runtime} runtime, "
        f"loaded in {load_s:.1f} s"
    )

    result: dict = {
        "engine": args.engine,
        "device": args.device,
        "precision": getattr(detector, "precision", "fp32"),
        "runtime": runtime,
        "command": " ".join(sys.argv),
        "machine": machine(torch, args),
    }
    if args.repeats:  # 0: only the study and series figures
        clean_once(options, path)  # warm-up (first CRAFT call allocates)
        runs = [clean_once(options, path) for _ in range(args.repeats)]
        seconds = [r[0] for r in runs]
        report, ds = runs[-1][1], runs[-1][2]
        result |= {
            "file": FILE,
            "frames": report["frames"],
            "engine": args.engine,
            "canvas_size": options.canvas_size,
            "precision": report.get("detector_precision", "fp32"),
            "device": args.device,
            "detector_load_s": round(load_s, 2),
            "composite": {
                "seconds_per_cine": round(float(np.median(seconds)), 3),
                "runs": [round(s, 3) for s in seconds],
                "recall": written_recall(ds, first_frame, labels),
                "boxes": len(report["boxes"]),
                "verify_passes": report["verify_passes"],
                "clean_s": report["clean_s"],
                "encode_s": report["encode_s"],
            },
        }
        result["cines_per_second"] = round(1.0 / result["composite"]["seconds_per_cine"], 3)
        print(
            f"composite   {result['composite']['seconds_per_cine']:.2f} s/cine"
            f"  recall {result['composite']['recall']:.3f}"
            f"  ({args.engine} {result['precision']}, {args.device}, {torch.get_num_threads()} thread(s))"
        )
        if not args.skip_every_frame:
            every = PixelOptions(device=args.device, ocr_engine=args.engine, ocr_every_frame=True, **extra)
            sec, rep, ds_every = clean_once(every, path)
            result["every_frame"] = {
                "seconds_per_cine": round(sec, 3),
                "recall": written_recall(ds_every, first_frame, labels),
                "boxes": len(rep["boxes"]),
            }
            result["speedup"] = round(sec / result["composite"]["seconds_per_cine"], 1)
            print(
                f"every-frame {sec:.2f} s/cine  recall {result['every_frame']['recall']:.3f}"
                f"  -> composite is {result['speedup']}x faster"
            )
    if args.study:
        baseline = args.study if args.baseline_cines is None else args.baseline_cines
        every = baseline if args.every_frame_cines is None else args.every_frame_cines
        result["study"] = study(options, args.study, min(baseline, args.study), min(every, args.study))
    if args.ct_slices:
        result["ct_series"] = series(options, "693_UNCR.dcm", args.ct_slices)
    if args.mr_slices:
        result["mr_series"] = series(options, "MR-SIEMENS-DICOM-WithOverlays.dcm", args.mr_slices)
    if args.labelled:
        result["labelled_set"] = labelled(options)
    precision = result.get("precision", getattr(detector, "precision", args.precision))
    out = ROOT / "bench" / "results" / f"pixels-{args.device}-{args.engine}-{precision}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
