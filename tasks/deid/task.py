"""Prefect wrapper: de-identify one batch of files. The only module of ``tasks.deid`` that imports Prefect.

Parameters and results carry no PHI. Source file names can hold patient names, so a batch is passed
as the path of a *batch manifest*: a JSON list of source paths in a 0600 file with a random name,
outside the output folder (:func:`write_batch_manifest`). The key is never a parameter: the task reads
it from ``key_file`` or ``MEDFLOW_DEID_KEY``. The result is counts only. Caching and result
persistence are off (the inputs are PHI).
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from collections import Counter
from pathlib import Path

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.deid.context import DeidContext
from tasks.deid.folder import process_file
from tasks.deid.keys import KEY_ENV, load_key
from tasks.deid.options import parse_options


def write_batch_manifest(paths: list[Path], source: Path, directory: Path | None = None) -> Path:
    """Write the relative paths of one batch to a private manifest file; return its (PHI-free) path."""
    directory = Path(directory or Path(tempfile.gettempdir()) / "medflow-batches")
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / f"batch-{uuid.uuid4().hex}.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump([Path(p).relative_to(source).as_posix() for p in paths], fh)
    return path


@task(name="deid-batch", cache_policy=NO_CACHE, persist_result=False, retries=0)
def deidentify_batch(
    manifest: str,
    source: str,
    output: str,
    key_file: str | None = None,
    options: list[str] | None = None,
    clean_pixels: str = "auto",
) -> dict[str, int]:
    """De-identify the files listed in ``manifest`` (relative to ``source``) into ``output``; return counts."""
    key = load_key(Path(key_file) if key_file else None, os.environ.get(KEY_ENV))
    ctx = DeidContext.create(key, options=parse_options(options or []), clean_pixels=clean_pixels)
    names = json.loads(Path(manifest).read_text())
    counts: Counter = Counter()
    for rel in names:
        status, _, _ = process_file(Path(source) / rel, rel, Path(output), ctx)
        counts[status] += 1
    Path(manifest).unlink(missing_ok=True)
    return dict(counts)
