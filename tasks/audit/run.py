"""``audit_dataset``: collect the originals' identifying values, scan everything under DATASET, report."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

from tasks.audit import values
from tasks.audit.collect import DEFAULT_RETAINED, PatternSet, collect_patterns
from tasks.audit.report import AuditReport, Finding
from tasks.audit.scan import (
    BINARY_MIN_LENGTH,
    _findings,
    dataset_files,
    scan_bytes_file,
    scan_dicom,
    scan_html_file,
    scan_parquet,
)
from tasks.audit.search import Matcher
from tasks.audit.table import load_table

log = logging.getLogger(__name__)

MAX_LABELS = 6


def _labeler(patterns: PatternSet):
    def labels(pattern: str) -> tuple[str, ...]:
        found = sorted(patterns.labels.get(pattern, ()))
        return tuple(found[:MAX_LABELS]) + (("...",) if len(found) > MAX_LABELS else ())

    return labels


def audit_dataset(
    dataset: Path,
    originals: Path | None = None,
    *,
    patterns: PatternSet | None = None,
    ocr: bool = True,
    ocr_frames: int = 3,
    ocr_max_arrays: int | None = None,
    retained: frozenset[str] = DEFAULT_RETAINED,
    table_path: Path | None = None,
    date_shift: Callable[[object], int] | None = None,
) -> AuditReport:
    """Scan every file below ``dataset`` for the identifying values of ``originals`` (or given ``patterns``).

    A file whose path itself contains an identifying value is reported as ``path-sha256:<hash of the
    relative path>`` (find it with ``sha256sum``), so the report never spells the value. Without originals only
    the structural DICOM checks and OCR's text-box count run. OCR reads ``ocr_frames``
    frames of every stored array (of the first ``ocr_max_arrays`` when given: OCR costs about a second a
    frame on a CPU). The report names files (relative to ``dataset``) and attributes, never values.
    """
    started = time.monotonic()
    table = load_table(table_path)
    if patterns is None:
        patterns = (
            collect_patterns(originals, table=table, retained=retained, date_shift=date_shift)
            if originals
            else PatternSet()
        )
    report = AuditReport(
        dataset=str(dataset),
        patterns=len(patterns),
        originals_read=patterns.originals_read,
        originals_unreadable=patterns.originals_unreadable,
        pattern_rule=(values.__doc__ or "").split("``pattern_rule``):", 1)[-1].strip(),
    )
    labels = _labeler(patterns)
    matcher = Matcher(patterns.labels)
    binary_matcher = Matcher(patterns.labels, min_length=BINARY_MIN_LENGTH)
    stores: list[Path] = []
    dicoms: list[Path] = []
    for path, kind in dataset_files(dataset):
        relpath = path.relative_to(dataset).as_posix()
        name_hits = matcher.find(relpath)
        if name_hits:  # the path itself carries a value: report it only by a hash of the path
            relpath = "path-sha256:" + hashlib.sha256(relpath.encode()).hexdigest()[:16]
            attrs = tuple(sorted({a for p in name_hits for a in labels(p)}))
            report.findings.append(Finding(relpath, "file or folder name", attrs, "value"))
        if kind == "not-regular":
            if path.is_symlink():
                report.findings.append(Finding(relpath, "file", ("symlink inside the dataset",), "structure"))
            report.skip(kind)
            continue
        if kind == "zarr-chunk":
            report.skip("zarr-chunk (pixels: OCR)")
            continue
        if kind == "static-asset":
            report.skip("Data Docs theme asset (vendored, no data)")
            continue
        if kind == "zarr-meta" and path.name == "zarr.json" and path.parent.name.endswith(".zarr"):
            stores.append(path.parent)
        try:
            if kind == "dicom":
                report.findings += scan_dicom(path, relpath, matcher, table, labels)
                dicoms.append(path)
            elif kind == "parquet":
                report.findings += scan_parquet(path, relpath, matcher, labels)
            elif kind == "html":
                report.findings += _findings(relpath, "text", scan_html_file(path, matcher), labels)
            else:
                active = binary_matcher if kind == "binary" else matcher
                report.findings += _findings(relpath, kind, scan_bytes_file(path, active), labels)
        except OSError:
            report.findings.append(Finding(relpath, "file", ("unreadable: cannot be audited",), "structure"))
            continue
        report.files_scanned += 1
        report.bytes_scanned += path.stat().st_size
    if ocr:
        _ocr(report, dataset, stores, dicoms, patterns, ocr_frames, ocr_max_arrays)
    report.seconds = round(time.monotonic() - started, 3)
    log.info("audit: %d files, %d patterns, %d findings", report.files_scanned, report.patterns, len(report.findings))
    return report


def _ocr(
    report: AuditReport,
    dataset: Path,
    stores: list[Path],
    dicoms: list[Path],
    patterns: PatternSet,
    frames: int,
    max_arrays: int | None,
) -> None:
    from tasks.audit.ocr import compact, iter_arrays, ocr_dicom, ocr_frames

    compacted: dict[str, set[str]] = {}
    for pattern, labels in patterns.labels.items():
        key = compact(pattern)
        if values.is_identifying(key):
            compacted.setdefault(key, set()).update(labels)
    matcher = Matcher(compacted)
    limit = max_arrays if max_arrays is not None else float("inf")
    for store in stores:
        for key, array in iter_arrays(store):
            if report.arrays_ocr >= limit:
                break
            n, boxes, hits = ocr_frames(array, matcher, frames)
            report.arrays_ocr += 1
            report.frames_ocr += n
            report.text_boxes_seen += boxes
            _ocr_findings(report, f"{store.relative_to(dataset).as_posix()}/{key}", hits, compacted)
    for path in dicoms:
        if report.arrays_ocr >= limit:
            break
        try:
            result = ocr_dicom(path, matcher, frames)
        except Exception:  # undecodable pixels: nothing OCR can read (the pixel cleaner quarantines those)
            report.skip("dicom pixels undecodable for OCR")
            continue
        if result is None:
            continue
        n, boxes, hits = result
        report.arrays_ocr += 1
        report.frames_ocr += n
        report.text_boxes_seen += boxes
        _ocr_findings(report, path.relative_to(dataset).as_posix(), hits, compacted)


def _ocr_findings(report: AuditReport, relpath: str, hits, compacted: dict[str, set[str]]) -> None:
    for pattern, count in hits.items():
        attrs = tuple(sorted(compacted[pattern]))[:MAX_LABELS]
        report.findings.append(Finding(relpath, "ocr of stored frames", attrs, "ocr", "", count))
