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

from tasks.deid.reader import quiet_pydicom
from tasks.discovery import discover, file_size, is_regular_file

log = logging.getLogger(__name__)

_HEADER_TAGS = ["SeriesInstanceUID", "Modality", "NumberOfFrames"]
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


def _group_key(path: Path) -> tuple[str, bool, str]:
    """(grouping key, must stay together, modality code). Unreadable headers go alone; the batch
    quarantines them."""
    if not is_regular_file(path):  # never open a FIFO (blocks) or follow a broken link here
        return f"file:{path}", False, "unreadable"
    quiet_pydicom()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom's warnings can quote a value
            ds = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=_HEADER_TAGS)
        series = str(ds.get("SeriesInstanceUID", "") or "")
        modality = str(ds.get("Modality", "") or "")
        frames = ds.get("NumberOfFrames")
    except Exception:  # any read failure (RecursionError from deep nesting included): this file goes alone
        return f"file:{path}", False, "unreadable"
    single_frame_volume = modality in VOLUME_MODALITIES and (frames in (None, "") or str(frames) == "1")
    code = modality_code(modality)
    if series and single_frame_volume:
        return f"series:{series}", True, code
    return (f"series:{series}" if series else f"file:{path}"), False, code


def plan_batches(
    files: Iterable[Path],
    *,
    batch_bytes: int,
    batch_files: int,
    min_batches: int = 1,
    modalities: dict[str, str] | None = None,
) -> list[list[str]]:
    """Pack series into batches of about ``batch_bytes`` source bytes / ``batch_files`` files.

    Slices of one CT/MR series always share a batch (the volume is assembled there); other series may be
    split. At least ``min_batches`` batches are made when there are enough files, so workers stay busy.
    ``modalities``, when given, receives each path's :func:`modality_code` (or "unreadable").
    """
    groups: dict[str, list[Path]] = defaultdict(list)
    together: dict[str, bool] = {}
    for path in files:
        key, keep, code = _group_key(path)
        if modalities is not None:
            modalities[str(path)] = code
        groups[key].append(path)
        together[key] = together.get(key, False) or keep
    total = sum(file_size(p) for paths in groups.values() for p in paths)
    n_files = sum(len(paths) for paths in groups.values())
    limit_bytes = max(1, min(batch_bytes, total // max(min_batches, 1) + 1))
    limit_files = max(1, min(batch_files, -(-n_files // max(min_batches, 1))))
    batches: list[list[str]] = []
    current: list[str] = []
    size = 0

    def flush() -> None:
        nonlocal current, size
        if current:
            batches.append(current)
        current, size = [], 0

    for key in groups:
        units = [groups[key]] if together[key] else [[p] for p in groups[key]]
        for unit in units:
            unit_size = sum(file_size(p) for p in unit)
            if current and (size + unit_size > limit_bytes or len(current) + len(unit) > limit_files):
                flush()
            current.extend(str(p) for p in unit)
            size += unit_size
    flush()
    # longest first (bytes as the cost estimate), so a big batch does not start last and idle the other workers
    batches.sort(key=lambda b: -sum(file_size(Path(p)) for p in b))
    log.info("planned %d batches for %d files", len(batches), n_files)
    return batches


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
