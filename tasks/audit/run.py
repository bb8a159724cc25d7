"""``audit_dataset``: collect the originals' identifying values, scan everything a run wrote, report.

Where the project's vocabulary (:mod:`tasks.audit.vocabulary`) is and is not a finding:

* data (DICOM copies, Zarr attribute values, the manifest's cells, JSON values, any other file): every
  pattern, vocabulary words included (a patient named "Nested" is found wherever header data goes);
* places only code writes: JSON keys, Parquet schemas, zarr's own metadata, and the run logs (audit,
  quarantine, deid-audit lines, ``ingest-runs/``, ``qc/results-*.json``: ids, counts, reason codes and
  messages by construction): every pattern but those made of medflow's vocabulary words;
* what Great Expectations writes (``qc/gx/``; it sees nothing but the manifest): a pattern counts when the
  manifest holds it too, or when it is no word of medflow's or Great Expectations' vocabulary;
* the Prefect database, when the server is local (SQLite file and WAL): every pattern but those made of
  medflow's or Prefect's words or of the database's schema.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

from tasks.audit import values
from tasks.audit.collect import DEFAULT_RETAINED, PatternSet, collect_patterns
from tasks.audit.report import AuditReport, Finding
from tasks.audit.scan import (
    BINARY_MIN_LENGTH,
    JSON_SUFFIXES,
    JSONL_SUFFIXES,
    Hits,
    Search,
    _findings,
    dataset_files,
    scan_bytes_file,
    scan_dicom,
    scan_html_file,
    scan_json_file,
    scan_parquet,
    scan_text_file,
)
from tasks.audit.search import Matcher
from tasks.audit.table import load_table
from tasks.audit.vocabulary import database_schema_words, is_vocabulary, library_words, project_vocabulary

log = logging.getLogger(__name__)

MAX_LABELS = 6
GX_DIR = ("qc", "gx")
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
ZARR_LIBRARY_META = frozenset({".zarray", ".zgroup", ".zmetadata"})


def _labeler(patterns: PatternSet):
    def labels(pattern: str) -> tuple[str, ...]:
        found = sorted(patterns.label_of(pattern))
        return tuple(found[:MAX_LABELS]) + (("...",) if len(found) > MAX_LABELS else ())

    return labels


@functools.cache
def _run_log_names() -> tuple[frozenset[str], str, str]:
    from tasks.deid.folder import INPUTS_FILE as DEID_INPUTS_FILE
    from tasks.deid.folder import LEGACY_INPUTS_FILE
    from tasks.ingest.finalize import RUNS_DIR
    from tasks.ingest.ledger import LEDGER_FILE
    from tasks.qc.validate import QC_DIR
    from tasks.quarantine import QUARANTINE_FILE

    return frozenset({LEDGER_FILE, QUARANTINE_FILE, DEID_INPUTS_FILE, LEGACY_INPUTS_FILE}), RUNS_DIR, QC_DIR


def is_run_log(relpath: str) -> bool:
    """A file medflow writes only ids, counts, reason codes and messages into (see the module docstring)."""
    names, runs_dir, qc_dir = _run_log_names()
    parts = PurePosixPath(relpath).parts
    if relpath in names or (parts and parts[0] == runs_dir):
        return True
    return len(parts) == 2 and parts[0] == qc_dir and parts[1].startswith("results-") and parts[1].endswith(".json")


def is_gx_output(relpath: str) -> bool:
    return PurePosixPath(relpath).parts[:2] == GX_DIR


class Searches:
    """The matchers of one audit, built once: for data, for code's words, for GX files, for Prefect's database."""

    def __init__(self, patterns: PatternSet, vocabulary: frozenset[str]):
        self.patterns = patterns
        self.vocabulary = vocabulary
        self.data = Search(
            Matcher(patterns.labels),
            self._matcher(patterns.labels, vocabulary),
            Matcher(patterns.short, whole_words=True),
            self._matcher(patterns.short, vocabulary, whole_words=True),
        )
        self.binary = Matcher(patterns.labels, min_length=BINARY_MIN_LENGTH)

    @staticmethod
    def _matcher(patterns: dict[str, set[str]], words: frozenset[str], **kwargs: bool) -> Matcher:
        return Matcher([p for p in patterns if not is_vocabulary(p, words)], **kwargs)

    @functools.cached_property
    def gx_words(self) -> frozenset[str]:
        return self.vocabulary | library_words("great_expectations")

    def prefect(self, schema: set[str]) -> Matcher:
        words = self.vocabulary | library_words("prefect") | schema
        return self._matcher(self.patterns.labels, words)


def audit_dataset(
    dataset: Path,
    originals: Path | None = None,
    *,
    patterns: PatternSet | None = None,
    ocr: bool = True,
    ocr_frames: int = 3,
    ocr_max_arrays: int | None = None,
    ocr_nodes: set[str] | None = None,
    retained: frozenset[str] = DEFAULT_RETAINED,
    table_path: Path | None = None,
    date_shift: Callable[[object], int] | None = None,
    prefect_database: bool = False,
) -> AuditReport:
    """Scan every file below ``dataset`` for the identifying values of ``originals`` (or given ``patterns``).

    A file whose path itself contains an identifying value is reported as ``path-sha256:<hash of the
    relative path>`` (find it with ``sha256sum``), so the report never spells the value. Without originals only
    the structural DICOM checks and OCR's text-box count run. OCR reads ``ocr_frames`` frames of every stored
    array: of the Zarr nodes in ``ocr_nodes`` when given (those a run wrote), of the first ``ocr_max_arrays``
    when given (OCR costs about a second a frame on a CPU). With ``prefect_database`` the local Prefect
    server's SQLite database and WAL are searched too (see :func:`local_prefect_database`). The report names
    files (relative to ``dataset``) and attributes, never values.
    """
    started = time.monotonic()
    table = load_table(table_path)
    vocabulary = project_vocabulary()
    if patterns is None:
        patterns = (
            collect_patterns(originals, table=table, retained=retained, date_shift=date_shift, vocabulary=vocabulary)
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
    searches = Searches(patterns, vocabulary)
    stores: list[Path] = []
    dicoms: list[Path] = []
    gx_hits: list[tuple[str, str, Hits]] = []
    manifest_hits: set[str] = set()
    for path, kind in dataset_files(dataset):
        relpath = path.relative_to(dataset).as_posix()
        name_hits = searches.data.data.find(relpath)
        if name_hits:  # the path itself carries a value: report it only by a hash of the path
            relpath = "path-sha256:" + hashlib.sha256(relpath.encode()).hexdigest()[:16]
            attrs = tuple(sorted({a for p in name_hits for a in labels(p)}))
            report.findings.append(Finding(relpath, "file or folder name", attrs, "value"))
        if kind == "unlisted":
            report.findings.append(Finding(relpath, "folder", ("cannot be listed: cannot be audited",), "structure"))
            continue
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
                report.findings += scan_dicom(path, relpath, searches.data, table, labels)
                dicoms.append(path)
            elif kind == "parquet":
                found = scan_parquet(path, relpath, searches.data, labels)
                if path.parent == dataset:
                    manifest_hits.update(_patterns_in(found, path, searches))
                report.findings += found
            elif is_gx_output(relpath):
                gx_hits.append((relpath, _where(kind), _scan_file(path, kind, searches, code_only=False)))
            else:
                hits = _scan_file(path, kind, searches, code_only=is_run_log(relpath))
                report.findings += _findings(relpath, _where(kind), hits, labels)
        except OSError:
            report.findings.append(Finding(relpath, "file", ("unreadable: cannot be audited",), "structure"))
            continue
        report.files_scanned += 1
        report.bytes_scanned += path.stat().st_size
    for relpath, kind, hits in gx_hits:
        report.findings += _findings(relpath, kind, _gx_filter(hits, manifest_hits, searches.gx_words), labels)
    if prefect_database:
        _prefect(report, searches, labels)
    if ocr:
        _ocr(report, dataset, stores, dicoms, patterns, ocr_frames, ocr_max_arrays, ocr_nodes)
    report.seconds = round(time.monotonic() - started, 3)
    log.info("audit: %d files, %d patterns, %d findings", report.files_scanned, report.patterns, len(report.findings))
    return report


def _where(kind: str) -> str:
    return "text" if kind == "html" else kind


def _scan_file(path: Path, kind: str, searches: Searches, *, code_only: bool) -> Hits:
    """Hits in one non-DICOM, non-Parquet file, in the way its kind needs (see :mod:`tasks.audit.scan`)."""
    search = searches.data
    suffix = path.suffix.lower()
    if kind == "zarr-meta":
        if path.name in ZARR_LIBRARY_META:
            return scan_text_file(path, search, code_only=True)
        parsed = scan_json_file(path, search, zarr_meta=path.name == "zarr.json")
        return parsed if parsed is not None else scan_text_file(path, search)
    if kind == "html":
        return scan_html_file(path, search) if not code_only else scan_text_file(path, search, code_only=True)
    if kind == "binary":
        return scan_bytes_file(path, searches.binary)
    if suffix in JSON_SUFFIXES or suffix in JSONL_SUFFIXES:
        parsed = scan_json_file(path, search, code_only=code_only)
        if parsed is not None:
            return parsed
    return scan_text_file(path, search, code_only=code_only)


def _patterns_in(findings: list[Finding], path: Path, searches: Searches) -> set[str]:
    """Patterns present in the manifest (any cell or the schema), for the Great Expectations rule."""
    if not findings:
        return set()
    import pyarrow.parquet as pq

    found: set[str] = set()
    pf = pq.ParquetFile(path)
    for batch in pf.iter_batches(batch_size=65536):
        for column in batch.columns:
            text = "\n".join(str(v) for v in column.to_pylist())
            found.update(searches.data.data.find(text))
            found.update(searches.data.short_data.find(text))
    return found


def _gx_filter(hits: Hits, manifest: set[str], gx_words: frozenset[str]) -> Hits:
    """Hits of GX-written files that count: patterns the manifest holds, or that are not vocabulary words."""
    kept: Hits = {}
    for encoding, counter in hits.items():
        counter = Counter({p: n for p, n in counter.items() if p in manifest or not is_vocabulary(p, gx_words)})
        if counter:
            kept[encoding] = counter
    return kept


def local_prefect_database() -> tuple[list[Path], str]:
    """(files to search, status): the SQLite database of a local Prefect server and its WAL/journal.

    Local means no API URL (an ephemeral server) or one on a loopback address; the database is the one
    ``PREFECT_SERVER_DATABASE_CONNECTION_URL`` names (by default ``PREFECT_HOME/prefect.db``).
    """
    from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_DATABASE_CONNECTION_URL

    api = PREFECT_API_URL.value()
    if api and urlparse(api).hostname not in LOOPBACK:
        return [], "remote server"
    url = str(PREFECT_SERVER_DATABASE_CONNECTION_URL.value() or "")
    if not url.startswith("sqlite") or ":///" not in url:
        return [], "not SQLite"
    database = Path(url.split(":///", 1)[1].split("?", 1)[0])
    files = [p for p in (database, Path(f"{database}-wal"), Path(f"{database}-journal")) if p.is_file()]
    return files, "scanned" if files else "no database file"


def _prefect(report: AuditReport, searches: Searches, labels) -> None:
    files, report.prefect_database = local_prefect_database()
    if not files:
        return
    matcher = searches.prefect(database_schema_words(files[0]))
    for path in files:
        try:
            hits = scan_bytes_file(path, matcher)
        except OSError:
            report.findings.append(
                Finding(f"prefect:{path.name}", "file", ("unreadable: cannot be audited",), "structure")
            )
            continue
        report.findings += _findings(f"prefect:{path.name}", "prefect database", hits, labels)
        report.prefect_files_scanned += 1


def _ocr(
    report: AuditReport,
    dataset: Path,
    stores: list[Path],
    dicoms: list[Path],
    patterns: PatternSet,
    frames: int,
    max_arrays: int | None,
    nodes: set[str] | None,
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
            if nodes is not None and key.split("/", 1)[0] not in nodes:
                continue
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
