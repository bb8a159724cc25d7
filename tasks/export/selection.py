"""Which de-identified files to send: all under ``DATASET/deid/``, or those of a manifest selection."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from tasks.errors import ConfigError
from tasks.ingest.options import DEID_DIR

#: selection columns, in the order of the folder levels ``deid/<patient>/<study>/<series>/<instance>.dcm``
LEVELS = ("patient_id", "study_id", "series_id", "instance_id")


def deid_files(dataset: Path, selection: Path | None = None) -> list[Path]:
    """Every de-identified file of ``dataset`` (sorted), or those whose patient, study, series or instance is listed
    in the ``selection`` CSV (any of the columns :data:`LEVELS`, e.g. rows of ``manifest.parquet`` saved as CSV)."""
    root = Path(dataset) / DEID_DIR
    if not root.is_dir():
        raise ConfigError("the dataset keeps no de-identified DICOM; ingest it with `medflow ingest --keep-deid`")
    files = sorted(p for p in root.glob("*/*/*/*.dcm") if p.is_file())
    if selection is None:
        return files
    try:
        table = pd.read_csv(selection, dtype=str)
    except (OSError, ValueError):
        raise ConfigError("cannot read the selection as CSV") from None
    wanted = {level: set(table[level].dropna()) for level in LEVELS if level in table.columns}
    if not wanted:
        raise ConfigError(f"the selection has none of the columns {', '.join(LEVELS)}")
    picked = []
    for path in files:
        parts = (*path.relative_to(root).parent.parts, path.stem)
        if any(parts[LEVELS.index(level)] in values for level, values in wanted.items()):
            picked.append(path)
    return picked
