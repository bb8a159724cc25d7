"""De-identification throughput: medflow vs dicognito vs Kitware dicom-anonymizer vs pydicom/deid vs the
bare pydicom read+write floor. Same corpus, same run, one core each (``taskset``), files per CPU-second.

Corpus: 1,000 copies of pydicom-data's ``CT_small.dcm`` with distinct UIDs and 10 patients, and every
image file of pydicom-data (reported separately; ``--image-passes`` times, for a stable CPU-time figure).
Peers come from the ``bench`` extra: ``pip install -e '.[bench]'``. Usage::

    python bench/deid_throughput.py [--copies 1000] [--tools medflow,floor,...] [--core 0]

Prints a table and writes ``bench/results/deid_throughput.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
TOOLS = ("medflow", "floor", "dicognito", "kitware", "pydicom-deid")


# ---- corpus -----------------------------------------------------------------------------------------
def build_corpus(root: Path, copies: int) -> dict[str, list[str]]:
    """Write the CT copies and copy the pydicom-data images; return file lists per part."""
    import pydicom
    from pydicom.data import get_testdata_file, get_testdata_files
    from pydicom.uid import generate_uid

    ct_dir, data_dir = root / "ct_small_copies", root / "pydicom_data_images"
    ct_dir.mkdir(parents=True, exist_ok=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    template = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    ct_files = []
    for i in range(copies):
        patient = i % 10
        ds = template.copy()
        ds.PatientID, ds.PatientName = f"BENCH{patient:03d}", f"PATIENT^NUMBER{patient}"
        ds.StudyInstanceUID = generate_uid(entropy_srcs=[f"study{patient}"])
        ds.SeriesInstanceUID = generate_uid(entropy_srcs=[f"series{patient}"])
        ds.SOPInstanceUID = generate_uid(entropy_srcs=[f"sop{i}"])
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        path = ct_dir / f"ct_{i:05d}.dcm"
        ds.save_as(path)
        ct_files.append(str(path))
    data_files = []
    for i, src in enumerate(sorted(get_testdata_files())):
        try:
            ds = pydicom.dcmread(src, stop_before_pixels=False)
        except Exception:
            continue
        if "PixelData" not in ds or "SOPInstanceUID" not in ds:
            continue
        target = data_dir / f"img_{i:04d}_{Path(src).name}"
        shutil.copy(src, target)
        data_files.append(str(target))
    return {"ct_small_copies": ct_files, "pydicom_data_images": data_files}


# ---- one tool in a child process --------------------------------------------------------------------
def make_runner(tool: str, out: Path, files: list[str]):
    """Return ``fn(path) -> None`` for ``tool`` (imports happen here, outside the timed loop)."""
    import pydicom

    if tool == "floor":

        def run(p: str) -> None:
            pydicom.dcmread(p).save_as(out / Path(p).name)

    elif tool == "medflow":
        sys.path.insert(0, str(ROOT))
        from tasks.deid.context import DeidContext
        from tasks.deid.folder import process_file
        from tasks.deid.keys import DeidKey

        ctx = DeidContext.create(DeidKey(b"benchmark-key-not-secret-0123456789"), clean_pixels="off")

        # pydicom-data files that share a SOP Instance UID go to separate output roots (found before timing),
        # so each one is really written rather than skipped as a duplicate
        seen: dict[str, int] = {}
        roots: list[Path] = []
        for p in files:
            try:
                uid = str(pydicom.dcmread(p, stop_before_pixels=True, force=True).get("SOPInstanceUID", p))
            except Exception:
                uid = p
            roots.append(out / str(seen.get(uid, 0)))
            seen[uid] = seen.get(uid, 0) + 1
        next_root = iter(roots).__next__  # the timed loop visits the files in this order

        def run(p: str) -> None:
            status, _, _ = process_file(Path(p), Path(p).name, next_root(), ctx)
            if status != "written":
                raise RuntimeError(status)  # quarantined (truncated, no SOP UID, ...)

    elif tool == "dicognito":
        from dicognito.anonymizer import Anonymizer

        anonymizer = Anonymizer()

        def run(p: str) -> None:
            ds = pydicom.dcmread(p)
            anonymizer.anonymize(ds)
            ds.save_as(out / Path(p).name)

    elif tool == "kitware":
        from dicomanonymizer import anonymize_dicom_file

        def run(p: str) -> None:
            anonymize_dicom_file(p, str(out / Path(p).name))

    elif tool == "pydicom-deid":
        import logging

        from deid.config import DeidRecipe
        from deid.dicom import replace_identifiers
        from deid.logger import bot

        bot.level = 0
        logging.getLogger("deid").setLevel(logging.ERROR)
        recipe = DeidRecipe()

        def run(p: str) -> None:
            replace_identifiers([p], deid=recipe, save=True, output_folder=str(out), overwrite=True)

    else:
        raise SystemExit(f"unknown tool {tool}")
    return run


def child(tool: str, files_json: str) -> None:
    import warnings

    warnings.simplefilter("ignore")
    files = json.loads(Path(files_json).read_text())
    out = Path(tempfile.mkdtemp(prefix=f"bench-{tool}-"))
    run = make_runner(tool, out, files)
    failures = 0
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for p in files:
        try:
            run(p)
        except Exception:
            failures += 1
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    shutil.rmtree(out, ignore_errors=True)
    print(json.dumps({"files": len(files), "failures": failures, "cpu_s": cpu, "wall_s": wall}))


def measure(tool: str, files: list[str], core: int | None) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(files, fh)
    cmd = [sys.executable, __file__, "--child", tool, fh.name]
    if core is not None and shutil.which("taskset"):
        cmd = ["taskset", "-c", str(core), *cmd]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    os.unlink(fh.name)
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"}
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["files_per_cpu_s"] = result["files"] / result["cpu_s"] if result["cpu_s"] else None
    return result


def versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("pydicom", "dicognito", "dicom-anonymizer", "deid"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=1000)
    parser.add_argument("--image-passes", type=int, default=5, help="passes over the pydicom-data images (precision)")
    parser.add_argument("--tools", default=",".join(TOOLS))
    parser.add_argument("--core", type=int, default=0, help="CPU core for taskset (-1: no pinning)")
    parser.add_argument("--child", nargs=2, metavar=("TOOL", "FILES_JSON"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    core = None if args.core < 0 else args.core
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    with tempfile.TemporaryDirectory(prefix="deid-bench-") as tmp:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parts = build_corpus(Path(tmp), args.copies)
        parts["pydicom_data_images"] = parts["pydicom_data_images"] * args.image_passes
        results: dict[str, dict[str, dict]] = {}
        for part, files in parts.items():
            results[part] = {}
            for tool in tools:
                results[part][tool] = measure(tool, files, core)
                r = results[part][tool]
                rate = r.get("files_per_cpu_s")
                shown = f"{rate:8.1f} files/CPU-s" if rate else r.get("error", "")
                print(f"{part:22s} {tool:14s} {shown}  failures={r.get('failures', '-')}", flush=True)
    print()
    for part, by_tool in results.items():
        ours = by_tool.get("medflow", {}).get("files_per_cpu_s")
        if not ours:
            continue
        for tool, r in by_tool.items():
            if tool != "medflow" and r.get("files_per_cpu_s"):
                print(f"{part:22s} medflow / {tool:14s} = {ours / r['files_per_cpu_s']:.2f}x")
    doc = {
        "benchmark": "deid_throughput",
        "unit": "files per CPU-second, one core",
        "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
        },
        "versions": versions(),
        "copies": args.copies,
        "image_passes": args.image_passes,
        "results": results,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "deid_throughput.json").write_text(json.dumps(doc, indent=1) + "\n")
    print(f"\nwrote {RESULTS / 'deid_throughput.json'}")


if __name__ == "__main__":
    main()
