"""Find input files and group them into batches by series (all slices of a volume in one batch)."""

from __future__ import annotations

import json
import logging
import os
import warnings
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

import pydicom

from tasks.deid.reader import declared_pixel_bytes, quiet_pydicom
from tasks.discovery import discover, file_size, is_regular_file
from tasks.errors import InputError

log = logging.getLogger(__name__)

_HEADER_TAGS = [
    "SeriesInstanceUID",
    "Modality",
    "NumberOfFrames",
    "Rows",
    "Columns",
    "SamplesPerPixel",
    "BitsAllocated",
]
#: Per-file work (read, de-identify, audit line) counted as decoded pixel bytes: a CT slice costs ~4 ms,
#: a cine ~30-60 ms per decoded MB here (bench/ingest.py corpus)
FILE_COST = 64 * 1024
VOLUME_MODALITIES = frozenset({"CT", "MR", "PT"})
_MODALITY_TERMS = (
    "AR ASMT AU BDUS BI BMD CR CT CTPROTOCOL DG DMS DOC DX ECG EEG EMG EOG EPS ES FID GM HC HD IO IOL IVOCT "
    "IVUS KER KO LEN LS MG MR M3D NM OAM OCT OP OPM OPT OPTBSV OPTENF OPV OSS OT PLAN POS PR PT PX REG RESP "
    "RF RG RTDOSE RTIMAGE RTINTENT RTPLAN RTRAD RTRECORD RTSEGANN RTSTRUCT RWV SEG SM SMR SR SRF STAIN "
    "TEXTUREMAP TG US VA XA XAPROTOCOL XC"
)
#: DICOM Modality defined terms (PS3.3 C.7.3.1.1.1) allowed into Prefect tags.
MODALITY_CODES = frozenset(_MODALITY_TERMS.split())


def discover_files(source: Path) -> list[Path]:
    """Every entry below ``source`` but folders (hidden names excluded), in a stable order.

    FIFOs, dangling symlinks and symlink loops are included: the batch quarantines them as unreadable.
    """
    return list(discover(Path(source), skip_hidden=True))


def modality_code(value: object) -> str:
    """A DICOM Modality defined term, or "other": a header value can hold anything (a name, even), so
    only known codes ever reach a tag or a log."""
    code = str(value or "").strip().upper()
    return code if code in MODALITY_CODES else "other"


def _pixel_bytes(ds: pydicom.Dataset) -> int:
    """Decoded pixel bytes the header declares (0 when it declares none or nonsense: the batch quarantines it)."""
    try:
        return declared_pixel_bytes(ds)
    except InputError:
        return 0


def _group_key(path: Path) -> tuple[str, bool, str, int]:
    """(grouping key, must stay together, modality code, work estimate). Unreadable headers go alone; the
    batch quarantines them.

    The work estimate is the larger of the file's size and its declared decoded pixel bytes (a compressed
    cine costs what it decodes to), plus :data:`FILE_COST`.
    """
    size = file_size(path) + FILE_COST
    if not is_regular_file(path):  # never open a FIFO (blocks) or follow a broken link here
        return f"file:{path}", False, "unreadable", size
    quiet_pydicom()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom's warnings can quote a value
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=_HEADER_TAGS)
        series = str(ds.get("SeriesInstanceUID", "") or "")
        modality = str(ds.get("Modality", "") or "")
        frames = ds.get("NumberOfFrames")
        cost = max(size, _pixel_bytes(ds) + FILE_COST)
    except Exception:  # any read failure (RecursionError from deep nesting included): this file goes alone
        return f"file:{path}", False, "unreadable", size
    single_frame_volume = modality in VOLUME_MODALITIES and (frames in (None, "") or str(frames) == "1")
    code = modality_code(modality)
    if series and single_frame_volume:
        return f"series:{series}", True, code, cost
    return (f"series:{series}" if series else f"file:{path}"), False, code, cost


def plan_batches(
    files: Iterable[Path],
    *,
    batch_bytes: int,
    batch_files: int,
    min_batches: int = 1,
    modalities: dict[str, str] | None = None,
) -> list[list[str]]:
    """Pack series into batches of about ``batch_bytes`` of work (decoded pixel bytes, see :func:`_group_key`)
    and at most ``batch_files`` files.

    Slices of one CT/MR series always share a batch (the volume is assembled there); other series may be
    split. At least ``min_batches`` batches are made when there are enough files, so workers stay busy.
    ``modalities``, when given, receives each path's :func:`modality_code` (or "unreadable").
    """
    groups: dict[str, list[Path]] = defaultdict(list)
    together: dict[str, bool] = {}
    cost: dict[Path, int] = {}
    for path in files:
        key, keep, code, cost[path] = _group_key(path)
        if modalities is not None:
            modalities[str(path)] = code
        groups[key].append(path)
        together[key] = together.get(key, False) or keep
    total = sum(cost.values())
    n_files = len(cost)
    limit_bytes = max(1, min(batch_bytes, total // max(min_batches, 1) + 1))
    limit_files = max(1, min(batch_files, -(-n_files // max(min_batches, 1))))
    batches: list[list[Path]] = []
    current: list[Path] = []
    size = 0

    def flush() -> None:
        nonlocal current, size
        if current:
            batches.append(current)
        current, size = [], 0

    for key in groups:
        units = [groups[key]] if together[key] else [[p] for p in groups[key]]
        for unit in units:
            unit_size = sum(cost[p] for p in unit)
            if current and (size + unit_size > limit_bytes or len(current) + len(unit) > limit_files):
                flush()
            current.extend(unit)
            size += unit_size
    flush()
    # most work first, so a long batch does not start last and idle the other workers
    batches.sort(key=lambda b: -sum(cost[p] for p in b))
    log.info("planned %d batches for %d files", len(batches), n_files)
    return [[str(p) for p in batch] for batch in batches]


def write_batches(work_dir: Path, batches: list[list[str]]) -> list[Path]:
    """One private (0600, in a 0700 folder) JSON file per batch: source paths stay on disk, out of task
    parameters. The folder is removed at the end of the run, or by the next run after a crash."""
    for folder in (work_dir.parent, work_dir):
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(folder, 0o700)
    paths = []
    for i, batch in enumerate(batches):
        path = work_dir / f"batch-{i:05d}.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({"paths": batch}, fh)
        paths.append(path)
    return paths


def read_batch(path: Path) -> list[Path]:
    return [Path(p) for p in json.loads(Path(path).read_text())["paths"]]
