"""``DATASET/manifest.parquet``: one row per stored array, rebuilt from the rows kept in each node's attrs.

Every published node carries its manifest row (``attrs["manifest"]``), so the manifest can always be
brought up to date from the store, even after a run was interrupted between writing arrays and the manifest.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import pandas as pd

from tasks.atomic import atomic_write_bytes
from tasks.store.zarr_store import node_attrs, store_path

log = logging.getLogger(__name__)

MANIFEST_FILE = "manifest.parquet"


def manifest_path(dataset: Path) -> Path:
    return Path(dataset) / MANIFEST_FILE


def read_manifest(dataset: Path) -> pd.DataFrame:
    """The current manifest, or an empty frame."""
    path = manifest_path(dataset)
    return pd.read_parquet(path) if path.exists() else pd.DataFrame()


def stored_keys(dataset: Path) -> list[str]:
    """Keys of published nodes (directories of the store with group metadata)."""
    root = store_path(dataset)
    if not root.exists():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and (p / "zarr.json").is_file())


def node_row(dataset: Path, key: str) -> dict:
    """The manifest row recorded in the group metadata of ``key``."""
    return dict(node_attrs(dataset, key).get("manifest", {}))


def updated_manifest(dataset: Path, run_id: str) -> tuple[pd.DataFrame, int]:
    """The existing manifest plus rows for nodes it does not list yet, and fresh rows for nodes replaced since it
    was written (a volume extended by slices of a later run); returns (frame, new rows)."""
    current = read_manifest(dataset)
    listed = list(current["zarr_key"].str.split("/").str[0]) if "zarr_key" in current else []
    known = set(listed)
    written_ns = manifest_path(dataset).stat().st_mtime_ns if len(current) else 0
    root = store_path(dataset)
    new_rows, replaced = [], {}
    for key in stored_keys(dataset):
        if key not in known or (root / key / "zarr.json").stat().st_mtime_ns > written_ns:
            row = node_row(dataset, key)
            row["ingest_run_id"] = run_id
            if key in known:
                replaced[key] = row
            else:
                new_rows.append(row)
    if replaced:
        keep = [i for i, key in enumerate(listed) if key not in replaced]
        current = pd.concat([current.iloc[keep], pd.DataFrame(list(replaced.values()))], ignore_index=True)
        log.info("manifest: %d rows of replaced nodes refreshed", len(replaced))
    if not new_rows:
        return current, 0
    frame = pd.concat([current, pd.DataFrame(new_rows)], ignore_index=True) if len(current) else pd.DataFrame(new_rows)
    return frame, len(new_rows)


def write_manifest(dataset: Path, frame: pd.DataFrame) -> Path:
    """Write the manifest atomically (temporary file, fsync, rename)."""
    buffer = io.BytesIO()
    frame.reset_index(drop=True).to_parquet(buffer, index=False)
    path = manifest_path(dataset)
    atomic_write_bytes(path, buffer.getvalue())
    log.info("manifest: %d rows", len(frame))
    return path
