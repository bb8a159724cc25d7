"""The Prefect task wrapper: manifest path in, counts out (no file names, no key in parameters or results)."""

from __future__ import annotations

import shutil
import stat

from pydicom.data import get_testdata_file

from tasks.deid.keys import write_new_key
from tasks.deid.task import deidentify_batch, write_batch_manifest


def test_batch_from_manifest(tmp_path):
    source = tmp_path / "src" / "DOE_JOHN"
    source.mkdir(parents=True)
    for name in ("CT_small.dcm", "MR_small.dcm"):
        shutil.copy(get_testdata_file(name), source / name)
    (source / "junk.txt").write_text("hello")
    key = tmp_path / "key"
    write_new_key(key)
    manifest = write_batch_manifest(sorted(source.iterdir()), tmp_path / "src", tmp_path / "batches")
    assert "DOE" not in manifest.name and stat.S_IMODE(manifest.stat().st_mode) == 0o600
    counts = deidentify_batch.fn(
        str(manifest), str(tmp_path / "src"), str(tmp_path / "out"), key_file=str(key), clean_pixels="off"
    )
    assert counts == {"written": 2, "quarantined": 1}
    assert not manifest.exists()
    assert len(list((tmp_path / "out").rglob("*.dcm"))) == 2
