"""End-to-end ingest throughput and Prefect's orchestration overhead.

Corpus (≥ 1,000 files): pydicom-data files replicated with new UIDs (CT_small.dcm as 10-slice series,
MR_small.dcm, emri_small.dcm, examples_ybr_color.dcm cines) plus synthetic grayscale echo-like cines with a
FrameTime. The same corpus is ingested twice (per repeat) into fresh datasets with the same number of worker processes:

* ``plain``: ``tasks.ingest.folder.ingest_folder``, the work floor;
* ``flow``: the Prefect flow ``ingest`` (a real local Prefect server; batch tasks on threads).

Both run their batches in the same process pool (``tasks.ingest.pool``: forkserver workers with the batch
code preloaded), so the gap is Prefect alone. The fork server (one per process, ~1 s to start and import)
and Great Expectations (~1.5 s to import on the first QC) are started and imported before either run is
timed, so neither run pays for them and the other not. Each flow run gets a fresh temporary Prefect server,
which answers one request before the clock starts (its first answer takes ~0.5 s of cold start that a
long-running server has paid once).

Orchestration overhead share = (flow wall − plain wall) / flow wall, from the median runs with ``--repeat``
(plain and flow alternate, so a shared machine's changing load hits both). Pixel cleaning is off by default
(OCR would dominate and is measured in ``bench/ocr_recall.py``); ``--clean-pixels auto`` includes it. Usage::

    python bench/ingest.py [--files 1000] [--workers 2] [--clean-pixels off] [--repeat 3]

Prints the figures and writes ``bench/results/ingest.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
KEY_HEX = "5a" * 32


def synthetic_cine(path: Path, rng: np.random.Generator, frames: int = 40, fps: float = 45.0) -> None:
    """A grayscale multi-frame US object: a pulsing disc in speckle, FrameTime set, no burned-in text."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, UltrasoundMultiFrameImageStorage, generate_uid

    h, w = 128, 160
    yy, xx = np.mgrid[:h, :w]
    video = np.empty((frames, h, w), dtype=np.uint8)
    for t in range(frames):
        radius = 30 + 10 * np.sin(2 * np.pi * t / 20)
        disc = ((yy - h / 2) ** 2 + (xx - w / 2) ** 2) < radius**2
        video[t] = np.clip(rng.normal(60, 20, (h, w)) + 120 * disc, 0, 255)
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = UltrasoundMultiFrameImageStorage, generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.PatientID, ds.PatientName = f"SYN{rng.integers(1e6)}", "SYNTHETIC^PATIENT"
    ds.StudyDate, ds.Modality = "20200101", "US"
    ds.NumberOfFrames, ds.FrameTime = frames, f"{1000 / fps:.3f}"
    ds.Rows, ds.Columns, ds.SamplesPerPixel = h, w, 1
    ds.PhotometricInterpretation, ds.BitsAllocated, ds.BitsStored, ds.HighBit = "MONOCHROME2", 8, 8, 7
    ds.PixelRepresentation = 0
    ds.PixelData = video.tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID, ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPClassUID, ds.SOPInstanceUID
    ds.save_as(path, enforce_file_format=True)


def build_corpus(root: Path, files: int, seed: int = 0) -> dict[str, int]:
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    rng = np.random.default_rng(seed)
    counts = {"ct_slices": 0, "mr": 0, "enhanced_mr": 0, "ybr_cine": 0, "synthetic_cine": 0}
    plan = [("ct_slices", 0.6), ("mr", 0.15), ("enhanced_mr", 0.05), ("ybr_cine", 0.05), ("synthetic_cine", 0.15)]
    quota = {name: int(files * share) for name, share in plan}
    quota["ct_slices"] += files - sum(quota.values())
    templates = {
        "ct_slices": "CT_small.dcm",
        "mr": "MR_small.dcm",
        "enhanced_mr": "emri_small.dcm",
        "ybr_cine": "examples_ybr_color.dcm",
    }
    for kind, n in quota.items():
        folder = root / kind
        folder.mkdir(parents=True)
        if kind == "synthetic_cine":
            for i in range(n):
                synthetic_cine(folder / f"{i:05d}.dcm", rng)
            counts[kind] = n
            continue
        template = pydicom.dcmread(get_testdata_file(templates[kind]))
        normal = None
        if kind == "ct_slices":
            iop = np.asarray([float(v) for v in template.ImageOrientationPatient])
            normal = np.cross(iop[:3], iop[3:])
        series_uid = None
        for i in range(n):
            ds = template.copy()
            if kind == "ct_slices":
                if i % 10 == 0:
                    series_uid = generate_uid()
                ds.SeriesInstanceUID = series_uid
                ds.ImagePositionPatient = [
                    float(v) for v in np.asarray(template.ImagePositionPatient, float) + (i % 10) * 2.0 * normal
                ]
            else:
                ds.SeriesInstanceUID = generate_uid()
            ds.SOPInstanceUID = generate_uid()
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.save_as(folder / f"{i:05d}.dcm")
        counts[kind] = n
    return counts


def run_plain(source: Path, dataset: Path, workers: int, clean_pixels: str) -> dict:
    from tasks.deid.context import DeidContext
    from tasks.deid.keys import load_key
    from tasks.ingest.folder import ingest_folder

    ctx = DeidContext.create(load_key(env_value=KEY_HEX), clean_pixels=clean_pixels)
    t = time.perf_counter()
    summary = ingest_folder(source, dataset, ctx, workers=workers)
    return {**summary.as_dict(), "wall_seconds": time.perf_counter() - t}


def run_flow(source: Path, dataset: Path, workers: int, clean_pixels: str) -> dict:
    from prefect.testing.utilities import prefect_test_harness

    from flows.ingest import ingest
    from tasks.locations import LocationKind, register_location

    os.environ["MEDFLOW_DEID_KEY"] = KEY_HEX
    state = dataset.parent / "state"  # the flow takes location names: register the two folders, as `medflow ingest`
    os.environ["MEDFLOW_STATE_DIR"] = str(state)
    places = (
        register_location(state, LocationKind.SOURCE, source),
        register_location(state, LocationKind.DATASET, dataset),
    )
    with prefect_test_harness(server_startup_timeout=180):
        from prefect.client.orchestration import get_client

        with get_client(sync_client=True) as client:  # a fresh server answers its first request in ~0.5 s;
            client.api_version()  # a long-running `medflow server` has long answered it
        t = time.perf_counter()
        # audit=False: the same work as the plain-Python run, so the gap is orchestration alone
        summary = ingest(*places, workers=workers, clean_pixels=clean_pixels, audit=False)
        wall = time.perf_counter() - t
    return {**summary, "wall_seconds": wall}


def _median_run(runs: list[dict]) -> dict:
    """The run with the median wall time (the lower middle one for an even count)."""
    return sorted(runs, key=lambda r: r["wall_seconds"])[(len(runs) - 1) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clean-pixels", default="off", choices=["auto", "on", "off"])
    parser.add_argument("--repeat", type=int, default=1, help="Alternate plain and flow runs N times; medians.")
    args = parser.parse_args()
    from tasks.ingest.pool import batch_pool

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        corpus = build_corpus(tmp / "source", args.files)
        source_bytes = sum(p.stat().st_size for p in (tmp / "source").rglob("*") if p.is_file())
        with batch_pool(args.workers):  # start the (per-process) fork server outside both timings
            pass
        import great_expectations.expectations  # noqa: F401  (imported on first QC; by neither run then)

        plains, flows = [], []
        for i in range(args.repeat):  # alternate, so a change of machine load hits both
            plains.append(run_plain(tmp / "source", tmp / f"plain-{i}", args.workers, args.clean_pixels))
            flows.append(run_flow(tmp / "source", tmp / f"flow-{i}", args.workers, args.clean_pixels))
            for name in (f"plain-{i}", f"flow-{i}"):
                shutil.rmtree(tmp / name, ignore_errors=True)
    plain, flow = _median_run(plains), _median_run(flows)
    overhead = (flow["wall_seconds"] - plain["wall_seconds"]) / flow["wall_seconds"]
    keys = ("discovered", "stored", "skipped", "quarantined", "arrays_written", "batches", "wall_seconds")
    print(f"corpus: {sum(corpus.values())} files, {source_bytes / 1e6:.0f} MB: {corpus}")
    print(f"{'':14s}" + "".join(f"{k:>16s}" for k in (*keys, "files/s")))
    for name, r in (("plain python", plain), ("prefect flow", flow)):
        row = [r[k] for k in keys] + [r["discovered"] / r["wall_seconds"]]
        print(f"{name:14s}" + "".join(f"{v:16.1f}" if isinstance(v, float) else f"{v:16d}" for v in row))
    if args.repeat > 1:
        pairs = zip(plains, flows, strict=True)
        walls = ", ".join(f"{p['wall_seconds']:.1f}/{f['wall_seconds']:.1f}" for p, f in pairs)
        print(f"wall seconds plain/flow per run: {walls} (medians above)")
    print(f"orchestration overhead share: {overhead:.1%} (target <= 5%)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = {
        "benchmark": "ingest",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "args": vars(args),
        "corpus": corpus,
        "source_bytes": source_bytes,
        "plain": plain,
        "flow": flow,
        "runs": {"plain": [r["wall_seconds"] for r in plains], "flow": [r["wall_seconds"] for r in flows]},
        "files_per_second": {
            "plain": plain["discovered"] / plain["wall_seconds"],
            "flow": flow["discovered"] / flow["wall_seconds"],
        },
        "orchestration_overhead_share": overhead,
    }
    (RESULTS / "ingest.json").write_text(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
