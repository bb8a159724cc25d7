"""Hostile and broken inputs: no crash, no hang, bounded memory, every input accounted for, nothing partial.

Two parts: a fixed corpus of crafted cases (truncation, wrong VR/length, unclosed items, deep nesting,
dimensions claiming gigabytes, short/long pixel data, bad charsets and bytes, DICOMDIR, zero-byte files,
symlinks, a FIFO, a directory named like a file) run through the folder pipelines; and hypothesis byte-level
mutations of real files run through the reader and de-identifier one by one under a time limit.
"""

from __future__ import annotations

import json
import resource
import signal
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tasks.atomic import TEMP_PREFIX
from tasks.errors import InputError, QuarantineReason
from tests.reliability.corpus import TEST_KEY, copy_real
from tests.reliability.hostile import (
    BASES,
    DEEP_NESTING,
    NOT_FOR_DEID,
    base_bytes,
    nested_sequences,
    write_hostile_folder,
)

PER_FILE_SECONDS = 20
MAX_PIXEL_BYTES = 256 * 1024**2
RSS_GROWTH_LIMIT_MB = 400
REASONS = {str(r) for r in QuarantineReason}


def _ctx():
    from tasks.deid.context import DeidContext
    from tasks.deid.keys import DeidKey

    return DeidContext.create(DeidKey(bytes.fromhex(TEST_KEY)), max_pixel_bytes=MAX_PIXEL_BYTES)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def time_limit(seconds: int):
    """Fail (not hang) when the block runs longer than ``seconds``; pytest-timeout's own timer is kept."""

    def expire(signum, frame):
        raise TimeoutError(f"input took longer than {seconds}s")

    previous = signal.signal(signal.SIGALRM, expire)
    started = time.monotonic()
    outer, _interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer:
            signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - started), 0.01))


def _assert_nothing_partial(output: Path) -> None:
    assert not [p for p in output.rglob(f"{TEMP_PREFIX}*")], "temporary files left behind"
    for path in output.rglob("*.dcm"):
        ds = pydicom.dcmread(path)  # complete, parseable
        if "PixelData" in ds and not ds.file_meta.TransferSyntaxUID.is_compressed:
            frames = int(ds.get("NumberOfFrames", 1) or 1)
            expected = ds.Rows * ds.Columns * frames * ds.SamplesPerPixel * (ds.BitsAllocated // 8)
            assert len(ds.PixelData) >= expected


ORIGINALS = ("CT_small.dcm", "MR_small.dcm", "emri_small.dcm", "US1_J2KR.dcm")


@dataclass
class HostileRun:
    source: Path
    output: Path
    entries: int
    summary: object
    seconds: float
    rss_growth_mb: float


@pytest.fixture(scope="module")
def deid_run(tmp_path_factory: pytest.TempPathFactory) -> HostileRun:
    """The hostile folder (all cases) through ``deidentify_folder``, once for the tests below."""
    from tasks.deid.folder import deidentify_folder

    tmp = tmp_path_factory.mktemp("hostile-deid")
    source, output = tmp / "source", tmp / "output"
    entries = write_hostile_folder(source, exclude=NOT_FOR_DEID)
    ctx = _ctx()
    warm = tmp / "warm-source"
    warm.mkdir()
    (warm / "ct.dcm").write_bytes(base_bytes("CT_small.dcm"))
    deidentify_folder(warm, tmp / "warm", ctx, workers=0, progress=False)  # imports and caches (the text
    # detector a CT check loads) in this process, before measuring
    before = _peak_rss_mb()
    started = time.monotonic()
    with time_limit(PER_FILE_SECONDS * entries):
        summary = deidentify_folder(source, output, ctx, workers=0, progress=False)  # memory of this process
    return HostileRun(source, output, entries, summary, time.monotonic() - started, _peak_rss_mb() - before)


@pytest.fixture(scope="module")
def ingest_run(tmp_path_factory: pytest.TempPathFactory) -> HostileRun:
    """The hostile folder (but the deep nesting, see below) through ``ingest_folder``, once."""
    from tasks.ingest.folder import ingest_folder

    tmp = tmp_path_factory.mktemp("hostile-ingest")
    source, dataset = tmp / "source", tmp / "dataset"
    entries = write_hostile_folder(source, exclude=DEEP_NESTING)  # FIFO, dangling links, loops included
    before = _peak_rss_mb()
    started = time.monotonic()
    with time_limit(PER_FILE_SECONDS * entries):
        summary = ingest_folder(source, dataset, _ctx(), workers=0)  # memory of this process
    return HostileRun(source, dataset, entries, summary, time.monotonic() - started, _peak_rss_mb() - before)


@pytest.mark.timeout(240)
def test_hostile_folder_through_deid(deid_run: HostileRun) -> None:
    summary, output = deid_run.summary, deid_run.output
    assert summary.files == deid_run.entries
    assert summary.written + summary.skipped + summary.duplicates + summary.quarantined == summary.files
    assert summary.written >= 2  # the good files (and any benign mutation) get through
    assert deid_run.seconds < PER_FILE_SECONDS * deid_run.entries
    assert deid_run.rss_growth_mb < RSS_GROWTH_LIMIT_MB
    rows = [json.loads(line) for line in (output / "quarantine.jsonl").read_text().splitlines()]
    assert len(rows) == summary.quarantined
    assert {r["reason"] for r in rows} <= REASONS
    _assert_nothing_partial(output)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_hostile_folder_through_ingest(ingest_run: HostileRun) -> None:
    summary, dataset = ingest_run.summary, ingest_run.output
    assert summary.balanced, summary.line()
    assert summary.discovered == ingest_run.entries
    assert summary.stored >= 2
    assert ingest_run.rss_growth_mb < RSS_GROWTH_LIMIT_MB + 600  # GX and zarr load once
    assert not [p for p in dataset.rglob(f"{TEMP_PREFIX}*")]
    assert not [p for p in (dataset / ".staging").rglob("*")]
    assert not [p for p in (dataset / ".work").rglob("*")]
    rows = [json.loads(line) for line in (dataset / "quarantine.jsonl").read_text().splitlines()]
    assert len(rows) == summary.quarantined and {r["reason"] for r in rows} <= REASONS
    assert summary.quarantine_reasons.get("unreadable", 0) >= 4  # FIFO, dangling link, two-link loop


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    "run",
    [
        pytest.param("deid_run", id="deid"),
        pytest.param("ingest_run", id="ingest"),
    ],
)
def test_hostile_outputs_leak_nothing(request: pytest.FixtureRequest, tmp_path: Path, run: str) -> None:
    """Whatever a hostile file does to the parser, no value of the original may reach the output."""
    from tasks.audit import audit_dataset

    output = request.getfixturevalue(run).output
    originals = tmp_path / "originals"
    copy_real(originals, ORIGINALS)
    report = audit_dataset(output, originals, ocr=False)
    assert report.ok, [(f.path, f.where, f.attributes) for f in report.findings]


@pytest.mark.timeout(300)
def test_deeply_nested_file_through_ingest(tmp_path: Path) -> None:
    """A file whose header makes pydicom recurse too deep is quarantined alone; the run goes on."""
    from tasks.ingest.folder import ingest_folder

    source = tmp_path / "source"
    source.mkdir()
    (source / "nested.dcm").write_bytes(nested_sequences(200))
    (source / "good.dcm").write_bytes(base_bytes("CT_small.dcm"))
    summary = ingest_folder(source, tmp_path / "dataset", _ctx(), workers=1)
    assert summary.balanced and summary.quarantined == 1


mutation = st.tuples(
    st.sampled_from(["flip", "delete", "insert", "ff", "zero"]),
    st.floats(0.0, 1.0),
    st.integers(1, 64),
)


@pytest.mark.timeout(240)
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(base=st.sampled_from(BASES), edits=st.lists(mutation, min_size=1, max_size=4), cut=st.floats(0.05, 1.0))
def test_mutated_files_are_stored_or_quarantined(tmp_path: Path, base: str, edits, cut: float) -> None:
    from tasks.deid.folder import process_file
    from tasks.deid.reader import read_dicom

    data = bytearray(base_bytes(base))
    for kind, where, size in edits:
        at = int(where * max(len(data) - 1, 0))
        if kind == "flip":
            data[at] ^= 0xFF
        elif kind == "delete":
            del data[at : at + size]
        elif kind == "insert":
            data[at:at] = bytes((at * 31 + i) % 256 for i in range(size))
        elif kind == "ff":
            data[at : at + size] = b"\xff" * len(data[at : at + size])
        else:
            data[at : at + size] = bytes(len(data[at : at + size]))
    data = data[: max(1, int(len(data) * cut))] if cut < 0.98 else data
    case = tmp_path / f"case-{time.monotonic_ns()}"
    case.mkdir()
    path = case / "input.dcm"
    path.write_bytes(bytes(data))
    ctx = _ctx()

    with time_limit(PER_FILE_SECONDS):
        try:
            read_dicom(path, max_pixel_bytes=MAX_PIXEL_BYTES)
        except InputError as error:
            assert str(error.reason) in REASONS
        # anything else escaping the reader breaks its contract (InputError with a reason only)
        status, _actions, reason = process_file(path, "input.dcm", case / "out", ctx)
    assert status in {"written", "quarantined", "duplicate"}
    assert reason is None or reason in REASONS
    _assert_nothing_partial(case / "out")


def test_time_limit_stops_a_hang() -> None:
    """Control for the per-file limit above: a blocked call is interrupted, not waited for."""
    started = time.monotonic()
    with pytest.raises(TimeoutError), time_limit(1):
        time.sleep(30)
    assert time.monotonic() - started < 5
