"""Collect the identifying values of the originals: every PS3.15-listed attribute, recursively, plus private strings."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tasks.audit.table import AnnexTable, load_table
from tasks.audit.values import date_variants, is_identifying, normalise, short_name_parts, variants
from tasks.audit.vocabulary import is_vocabulary, project_vocabulary
from tasks.deid.actions import shift_da

log = logging.getLogger(__name__)

#: Options whose retained attributes (action ``K``) are not treated as identifying by default: the manifest
#: carries sex and age by contract.
DEFAULT_RETAINED = frozenset({"retain-patient-characteristics"})
TEXT_VRS = frozenset(
    {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI", "UR", "UT"}
)
MAX_TEXT_BYTES = 1 << 16


PATH_LABEL = "source-path"


@dataclass
class PatternSet:
    """Search pattern -> labels (``Keyword (gggg,eeee)``, or ``source-path``) of the attributes it came from;
    ``short``: names of 2-3 letters, searched as whole words in text outputs only."""

    labels: dict[str, set[str]] = field(default_factory=dict)
    short: dict[str, set[str]] = field(default_factory=dict)
    originals_read: int = 0
    originals_unreadable: int = 0

    def add(self, pattern: str, label: str) -> None:
        self.labels.setdefault(pattern, set()).add(label)

    def add_short(self, pattern: str, label: str) -> None:
        self.short.setdefault(pattern, set()).add(label)

    def label_of(self, pattern: str) -> set[str]:
        return self.labels.get(pattern) or self.short.get(pattern) or set()

    def __len__(self) -> int:
        return len(self.labels) + len(self.short)


def tag_label(tag: int, keyword: str = "") -> str:
    text = f"({tag >> 16:04X},{tag & 0xFFFF:04X})"
    return f"{keyword} {text}" if keyword else text


def _as_text(raw: bytes) -> str | None:
    """Bytes of a private/UN element as text, when they look like text."""
    data = raw[:MAX_TEXT_BYTES].rstrip(b"\x00 ")
    if len(data) < 4:
        return None
    printable = sum(32 <= b < 127 or b >= 160 or b in (9, 10, 13) for b in data)
    if printable < 0.9 * len(data):
        return None
    return data.decode("latin-1")


def _element_strings(elem) -> tuple[str, list[str]]:
    """(VR used for the variants, string items) of one element; empty for binary values."""
    vr = str(elem.VR)
    value = elem.value
    if value is None or value == "":
        return vr, []
    if isinstance(value, bytes):
        text = _as_text(value)
        return ("LO", text.split("\\")) if text else (vr, [])
    if vr not in TEXT_VRS:
        return vr, []
    items = value if isinstance(value, list | tuple) or type(value).__name__ == "MultiValue" else [value]
    return vr, [str(v) for v in items if v is not None]


def dataset_values(ds, table: AnnexTable, retained: frozenset[str]) -> Iterator[tuple[str, str, bool]]:
    """Yield (pattern, label, short) for every identifying value in ``ds`` (file meta included), recursing
    sequences; ``short`` marks a 2-3 letter person-name part (see :func:`tasks.audit.values.short_name_parts`)."""
    stack = [ds]
    if getattr(ds, "file_meta", None) is not None:
        stack.append(ds.file_meta)
    while stack:
        current = stack.pop()
        for elem in current:
            tag = int(elem.tag)
            if elem.VR == "SQ":
                stack.extend(item for item in (elem.value or []) if item is not None)
                continue
            private = elem.tag.is_private
            if private:
                if elem.tag.is_private_creator or not table.private_listed:
                    continue
                label = "private " + tag_label(tag)
            else:
                row = table.lookup(tag)
                if row is None or table.retained_by(tag, retained):
                    continue
                label = tag_label(tag, row.keyword or elem.keyword)
            try:
                vr, items = _element_strings(elem)
            except Exception:  # a value pydicom cannot convert: nothing to search for
                continue
            for item in items:
                for pattern in variants(item, vr):
                    yield pattern, label, False
                if vr == "PN":
                    for part in short_name_parts(item):
                        yield part, label, True


def kept_values(ds, table: AnnexTable, retained: frozenset[str]) -> Iterator[str]:
    """Normalised whole values of the public text attributes the profile keeps (not listed, or retained)."""
    stack = [ds]
    while stack:
        current = stack.pop()
        for elem in current:
            if elem.VR == "SQ":
                stack.extend(item for item in (elem.value or []) if item is not None)
                continue
            tag = int(elem.tag)
            if elem.tag.is_private or str(elem.VR) not in TEXT_VRS or isinstance(elem.value, bytes):
                continue
            if table.lookup(tag) is not None and not table.retained_by(tag, retained):
                continue
            try:
                _vr, items = _element_strings(elem)
            except Exception:  # a value pydicom cannot convert
                continue
            for item in items:
                yield normalise(item)


def path_values(relpath: Path, vocabulary: frozenset[str] = frozenset()) -> Iterator[str]:
    """Identifying parts of an original's path (folder and file names often carry names or MRNs); a part made
    of ``vocabulary`` words only (``truncated.dcm``) identifies nobody and is left out."""
    for part in [*relpath.parent.parts, relpath.stem]:
        pattern = normalise(part)
        if len(pattern) >= 6 and is_identifying(pattern) and not is_vocabulary(pattern, vocabulary):
            yield pattern


def iter_files(root: Path) -> Iterable[Path]:
    """Every non-folder entry below ``root`` (symlinks to folders not followed), FIFOs and links included, and
    every sub-folder that cannot be listed (counted as unreadable; its name is still a pattern)."""
    if root.is_file():
        yield root
        return
    unlisted: list[Path] = []
    for dirpath, dirs, files in os.walk(root, onerror=lambda error: unlisted.append(Path(error.filename))):
        while unlisted:
            yield unlisted.pop(0)
        dirs.sort()
        for name in sorted(files):
            yield Path(dirpath) / name
    yield from unlisted


def is_readable_original(path: Path) -> bool:
    """Whether ``path`` is safe to open: a regular file, or a symlink whose target is one.

    Checked with ``lstat`` first so a FIFO, socket or device (opening one blocks forever) is never opened; a
    symlink is followed only when its target is a regular file (the ingest stores such targets too, so their
    values must be searched for), never when it dangles, loops or names a FIFO/device.
    """
    try:
        mode = os.lstat(path).st_mode
        if stat.S_ISLNK(mode):
            mode = os.stat(path).st_mode
    except (OSError, RuntimeError):  # dangling link, loop, vanished entry
        return False
    return stat.S_ISREG(mode)


def collect_patterns(
    originals: Path,
    *,
    table: AnnexTable | None = None,
    retained: frozenset[str] = DEFAULT_RETAINED,
    include_paths: bool = True,
    date_shift: Callable[[object], int] | None = None,
    vocabulary: frozenset[str] | None = None,
) -> PatternSet:
    """Read every regular file below ``originals`` as DICOM and gather its patterns.

    Entries that are not regular files (see :func:`is_readable_original`) and files pydicom cannot read are
    counted in ``originals_unreadable``. Patterns equal to a whole value the profile keeps are dropped.

    ``date_shift(ds)`` is the de-identifier's day offset for an original (known only to a holder of the key).
    With it, a date that the de-identification itself produces (some original date moved by its patient's
    offset) is dropped: a shifted date can land on another patient's real date, and a bare date string cannot
    tell the two apart. Without it (no key) every original date is searched.

    Folder and file names made of ``vocabulary`` words (default: :func:`tasks.audit.vocabulary.project_vocabulary`)
    are not patterns.
    """
    import warnings

    import pydicom

    from tasks.deid.reader import quiet_pydicom

    quiet_pydicom()  # pydicom's value validation would print the (identifying) values it reads
    table = table or load_table()
    vocabulary = project_vocabulary() if vocabulary is None else vocabulary
    patterns = PatternSet()
    kept: set[str] = set()
    produced: set[str] = set()
    for path in iter_files(originals):
        if include_paths and originals.is_dir():
            for pattern in path_values(path.relative_to(originals), vocabulary):
                patterns.add(pattern, PATH_LABEL)
        if not is_readable_original(path):  # FIFO, socket, device, dangling link: counted, never opened
            patterns.originals_unreadable += 1
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # pydicom's warnings (on reading and on values) can quote a value
                ds = pydicom.dcmread(path, force=True, stop_before_pixels=True)
                offset = date_shift(ds) if date_shift is not None else None
                for pattern, label, short in dataset_values(ds, table, retained):
                    if short:
                        patterns.add_short(pattern, label)
                        continue
                    patterns.add(pattern, label)
                    if offset is not None:
                        produced.update(shifted_date_variants(pattern, offset))
                kept.update(kept_values(ds, table, retained))
        except Exception:  # broken originals are the ingest's business; the audit only counts them
            patterns.originals_unreadable += 1
            continue
        patterns.originals_read += 1
    for value in kept.intersection(patterns.labels):  # the output keeps these values by design
        del patterns.labels[value]
    for value in kept.intersection(patterns.short):
        del patterns.short[value]
    for value in produced.intersection(patterns.labels):  # dates the de-identification writes by design
        del patterns.labels[value]
    log.info("collected %d patterns from %d originals", len(patterns), patterns.originals_read)
    return patterns


def shifted_date_variants(pattern: str, offset_days: int) -> set[str]:
    """The written forms of ``pattern`` (a YYYYMMDD date) as the de-identifier shifts it; empty otherwise.

    Uses :func:`tasks.deid.actions.shift_da`, the very function the profile applies, so the audit discounts
    exactly the dates that de-identification writes.
    """
    if len(pattern) != 8 or not pattern.isdigit() or not date_variants(pattern):
        return set()
    shifted = shift_da(pattern, offset_days)
    return date_variants(shifted) if shifted else set()
