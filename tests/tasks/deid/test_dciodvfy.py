"""An independent judge of the de-identified DICOM: dciodvfy (dicom3tools) finds no error the input did not have.

Inputs: every pydicom-data file medflow accepts (reads and writes; the quarantined ones are not outputs), a small
synthetic echo cohort (tasks/synth) and an encapsulated PDF. Each input and its output (written by ``medflow
deid``'s folder function) are checked by dciodvfy; the ERROR lines are compared after stripping values (``<...>``,
quoted text, numbers in value positions) so that the same error matches; warnings are printed, never judged. dcmtk's
dcmdump must re-read every output without a warning or an error.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file, get_testdata_files

from tasks.deid.context import DeidContext
from tasks.deid.folder import write_instance
from tasks.deid.instance import deidentify_instance
from tasks.deid.reader import read_dicom
from tasks.errors import MedflowError
from tests.tasks.deid.test_header_gaps import encapsulated_pdf

DCIODVFY, DCMDUMP = shutil.which("dciodvfy"), shutil.which("dcmdump")
_NAMED = re.compile(r"(Element=|Module=|attribute |Macro=)<([^>]*)>")
_VALUE = re.compile(r"<[^>]*>")


def normalise(line: str) -> str:
    """An error line without its values, so that the same error on input and output compares equal."""
    line = _NAMED.sub(lambda m: f"{m.group(1)}[{m.group(2)}]", line)
    line = _VALUE.sub("<>", line)
    line = re.sub(r"'[^']*'( \(0x[0-9a-f]+\))?", "''", line)
    line = re.sub(r"values are .*$", "values are", line)
    line = re.sub(r"\b\d+(\.\d+){2,}\b|(?<=UID )\d+\b", "<uid>", line)  # UIDs change by design
    return line.strip()


def judge(path: Path) -> tuple[set[str], list[str]]:
    """(normalised error lines, warning lines) of dciodvfy on ``path``."""
    proc = subprocess.run([DCIODVFY, str(path)], capture_output=True, text=True, errors="replace", check=False)
    lines = (proc.stdout + proc.stderr).splitlines()
    errors = {normalise(x) for x in lines if x.startswith("Error")}
    return errors, [x for x in lines if x.startswith("Warning")]


#: Files whose pixels ``--clean-pixels auto`` rewrites, one per kind of encoding the cleaner writes back (a JPEG
#: baseline cine, RLE, lossy JPEG 2000, palette colour, big endian); OCR makes each cost seconds on a CPU.
PIXEL_CLEANED = (
    "examples_ybr_color.dcm",
    "OBXXXX1A_rle_2frame.dcm",
    "US1_J2KI.dcm",
    "examples_palette.dcm",
    "ExplVR_BigEnd.dcm",
)


def stage_inputs(source: Path) -> int:
    """Copy every pydicom-data file, the synthetic cohort and an encapsulated PDF under ``source``; return count."""
    from tasks.synth.cohort import make_cohort

    (source / "ref").mkdir(parents=True)
    files = [f for f in get_testdata_files("**/*") if Path(f).is_file()]
    for i, name in enumerate(files):
        shutil.copy(name, source / "ref" / f"{i:03d}")
    make_cohort(source.parent / "cohort", patients=3, seed=5, volume_every=2)
    shutil.copytree(source.parent / "cohort" / "dicom", source / "syn")
    encapsulated_pdf().save_as(source / "doc.pdf.dcm", enforce_file_format=True)
    return len(files)


def check(source: Path, out: Path, ctx: DeidContext, label: str) -> tuple[int, int]:
    """De-identify every file under ``source``, judge inputs and outputs; return (pairs, rejected) after asserting."""
    started = time.perf_counter()
    pairs, rejected = [], 0
    for n, path in enumerate(sorted(p for p in source.rglob("*") if p.is_file())):
        try:  # the engine's own path: read, de-identify, write (the folder run would skip repeated SOP instances)
            result = deidentify_instance(read_dicom(path, max_pixel_bytes=ctx.max_pixel_bytes), ctx)
            write_instance(result, out / f"{n:03d}.dcm")
        except MedflowError:
            rejected += 1
            continue
        pairs.append((path, out / f"{n:03d}.dcm"))
    with ThreadPoolExecutor(max_workers=4) as pool:
        judged = list(pool.map(lambda pair: (judge(pair[0]), judge(pair[1])), pairs))
    new_errors, warnings = {}, 0
    for (path, _), ((before, _), (after, after_warnings)) in zip(pairs, judged, strict=True):
        warnings += len(after_warnings)
        added = after - before
        if added:
            new_errors[path.relative_to(source).as_posix()] = sorted(added)
    dump_problems = []
    for _, target in pairs:
        proc = subprocess.run([DCMDUMP, "-q", "+E", str(target)], capture_output=True, text=True, check=False)
        if proc.returncode != 0 or "E:" in proc.stderr or "W:" in proc.stderr:
            dump_problems.append(target.name)
    seconds = time.perf_counter() - started
    print(
        f"\ndciodvfy ({label}): {len(pairs)} inputs and outputs checked ({rejected} inputs quarantined, not outputs),"
        f" {len(new_errors)} outputs with new errors, {warnings} warnings on outputs, {seconds:.1f} s"
    )
    for name, errors in sorted(new_errors.items()):
        print(f"  {name}: {errors}")
    assert not new_errors
    assert not dump_problems
    return len(pairs), rejected


@pytest.mark.slow
def test_deidentification_adds_no_dciodvfy_error(tmp_path: Path, key) -> None:
    assert DCIODVFY is not None, "dicom3tools' dciodvfy is not installed: run .ci/system-deps (CI does)"
    assert DCMDUMP is not None, "dcmtk's dcmdump is not installed: run .ci/system-deps (CI does)"
    source, out = tmp_path / "source", tmp_path / "out"
    stage_inputs(source)
    ctx = DeidContext.create(key, clean_pixels="off")  # the header profile on everything; pixels: the test below
    checked, _ = check(source, out, ctx, "header profile, every accepted file")
    assert checked >= 230


@pytest.mark.slow
def test_pixel_cleaning_adds_no_dciodvfy_error(tmp_path: Path, key) -> None:
    assert DCIODVFY is not None, "dicom3tools' dciodvfy is not installed: run .ci/system-deps (CI does)"
    source, out = tmp_path / "source", tmp_path / "out"
    source.mkdir()
    for name in PIXEL_CLEANED:
        shutil.copy(get_testdata_file(name), source / name)
    ctx = DeidContext.create(key, clean_pixels="auto")
    checked, rejected = check(source, out, ctx, "clean-pixels auto")
    assert checked == len(PIXEL_CLEANED) and rejected == 0
