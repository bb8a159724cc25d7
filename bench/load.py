"""Load test: ingest many files (10,000 by default) and watch throughput over time and peak memory.

Corpus: real pydicom-data files replicated with new UIDs (CT_small.dcm as 10-slice series with distinct
positions, MR_small.dcm, emri_small.dcm multi-frame MR), one patient per 20 files. The plain-Python ingest
(``tasks.ingest.folder.ingest_folder``, local process pool) runs over them; every finished batch records
the time and the files done, and a sampler thread records the resident memory of the whole process tree.
Throughput windows run from the first finished batch to the last (planning, which reads every header
once, and the manifest/QC step are reported separately).

Targets (issue 8): flat throughput (last quarter of the run within 20% of the first) and peak RSS under 2 GB.
Usage::

    python bench/load.py [--files 10000] [--workers 2] [--clean-pixels off] [--keep DIR]

Prints the figures beside the targets and writes ``bench/results/load.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
KEY_HEX = "3c" * 32
TARGET_RSS_GB = 2.0
FLAT_TOLERANCE = 0.2


def make_corpus(out: Path, files: int) -> float:
    """Write ``files`` replicated real files with new UIDs into ``out``; return seconds spent."""
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    bases = {n: pydicom.dcmread(get_testdata_file(n)) for n in ("CT_small.dcm", "MR_small.dcm", "emri_small.dcm")}
    written = 0
    group = 0
    while written < files:
        patient = f"LOAD{group // 2:06d}"
        study = generate_uid()
        # a 10-slice CT series, then one MR image and one multi-frame MR, per group
        series = generate_uid()
        for z in range(min(10, files - written)):
            ds = bases["CT_small.dcm"]
            ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID = patient, study, series
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
            ds.ImagePositionPatient = [0.0, 0.0, float(z) * 5.0]
            ds.InstanceNumber = z + 1
            ds.save_as(out / f"{written:06d}.dcm")
            written += 1
        for name in ("MR_small.dcm", "emri_small.dcm"):
            if written >= files:
                break
            ds = bases[name]
            ds.PatientID, ds.StudyInstanceUID, ds.SeriesInstanceUID = patient, study, generate_uid()
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
            ds.save_as(out / f"{written:06d}.dcm")
            written += 1
        group += 1
    return time.perf_counter() - started


class TreeSampler(threading.Thread):
    """Samples the summed RSS of this process and all its children every ``period`` seconds."""

    def __init__(self, period: float = 0.5):
        super().__init__(daemon=True)
        self.period = period
        self.peak = 0
        self.samples: list[tuple[float, int]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        import psutil

        me = psutil.Process()
        t0 = time.perf_counter()
        while not self._halt.wait(self.period):
            total = 0
            for proc in [me, *me.children(recursive=True)]:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    continue
            self.peak = max(self.peak, total)
            self.samples.append((round(time.perf_counter() - t0, 2), total))

    def stop(self) -> None:
        self._halt.set()
        self.join()


def windows(events: list[tuple[float, int]], count: int = 8) -> list[dict]:
    """Throughput (files/s) over ``count`` consecutive windows from the first finished batch to the last."""
    if len(events) < 3:
        return []
    begin, end = events[1][0], events[-1][0]
    out = []
    for i in range(count):
        lo, hi = begin + (end - begin) * i / count, begin + (end - begin) * (i + 1) / count
        done_lo = max([n for t, n in events if t <= lo] or [0])
        done_hi = max([n for t, n in events if t <= hi] or [0])
        out.append(
            {"from_s": round(lo, 1), "to_s": round(hi, 1), "files_per_s": round((done_hi - done_lo) / (hi - lo), 2)}
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clean-pixels", default="off", choices=["auto", "on", "off"])
    parser.add_argument("--keep", type=Path, default=None, help="Work folder to keep (default: a temporary one).")
    parser.add_argument("--out", type=Path, default=RESULTS / "load.json")
    args = parser.parse_args()

    from tasks.deid.context import DeidContext
    from tasks.deid.keys import DeidKey
    from tasks.ingest.folder import ingest_folder
    from tasks.ingest.options import IngestOptions

    work = args.keep or Path(tempfile.mkdtemp(prefix="medflow-load-"))
    source, dataset = work / "source", work / "dataset"
    try:
        gen_seconds = make_corpus(source, args.files)
        ctx = DeidContext.create(DeidKey(bytes.fromhex(KEY_HEX)), clean_pixels=args.clean_pixels)
        events: list[tuple[float, int]] = [(0.0, 0)]
        sampler = TreeSampler()
        started = time.perf_counter()

        def on_batch(done_batches: int, total: int, counts: dict) -> None:
            events.append((time.perf_counter() - started, events[-1][1] + counts["discovered"]))

        sampler.start()
        summary = ingest_folder(source, dataset, ctx, IngestOptions(), workers=args.workers, on_batch=on_batch)
        wall = time.perf_counter() - started
        sampler.stop()
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)

    series = windows(events)
    quarter = max(1, len(series) // 4)
    first = sum(w["files_per_s"] for w in series[:quarter]) / quarter if series else 0.0
    last = sum(w["files_per_s"] for w in series[-quarter:]) / quarter if series else 0.0
    ratio = last / first if first else 0.0
    peak_gb = sampler.peak / 1024**3
    result = {
        "bench": "load",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "files": args.files,
        "workers": args.workers,
        "clean_pixels": args.clean_pixels,
        "corpus_seconds": round(gen_seconds, 1),
        "wall_seconds": round(wall, 1),
        "first_batch_done_seconds": round(events[1][0], 1) if len(events) > 1 else None,
        "batch_phase_seconds": round(events[-1][0], 1),
        "finalize_seconds": round(wall - events[-1][0], 1),
        "files_per_second": round(args.files / max(events[-1][0], 1e-9), 2),
        "throughput_windows": series,
        "last_over_first_quarter": round(ratio, 3),
        "flat": abs(1 - ratio) <= FLAT_TOLERANCE,
        "peak_rss_gb": round(peak_gb, 3),
        "rss_under_target": peak_gb < TARGET_RSS_GB,
        "summary": {k: v for k, v in summary.as_dict().items() if k not in ("dataset", "qc_docs")},
        "balanced": summary.balanced,
    }
    print(f"{'':28}{'measured':>14}{'target':>14}")
    print(f"{'throughput (files/s)':28}{result['files_per_second']:>14}{'flat':>14}")
    print(f"{'wall / manifest+QC (s)':28}{result['wall_seconds']:>8}/{result['finalize_seconds']:<5}")
    print(f"{'first batch done at (s)':28}{result['first_batch_done_seconds']!s:>14}")
    print(f"{'last/first quarter':28}{result['last_over_first_quarter']:>14}{f'1 ± {FLAT_TOLERANCE}':>14}")
    print(f"{'peak RSS, process tree (GB)':28}{result['peak_rss_gb']:>14}{f'< {TARGET_RSS_GB}':>14}")
    print(f"{'accounted for':28}{summary.line():>14}")
    for w in series:
        print(f"  {w['from_s']:>7}-{w['to_s']:<7}s  {w['files_per_s']:>8} files/s")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
