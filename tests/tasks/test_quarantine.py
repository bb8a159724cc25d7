import json
from pathlib import Path

from tasks.errors import PixelError, QuarantineReason
from tasks.quarantine import QUARANTINE_FILE, QuarantineRecord, quarantine


def test_quarantine_record_from_error(tmp_path: Path) -> None:
    err = PixelError("Pixel Data (7FE0,0010) could not be decoded", reason=QuarantineReason.PIXELS_UNDECODABLE)
    quarantine(tmp_path, QuarantineRecord.from_error("abc123", err))
    (row,) = [json.loads(x) for x in (tmp_path / QUARANTINE_FILE).read_text().splitlines()]
    assert row["source_id"] == "abc123"
    assert row["step"] == "pixels"
    assert row["reason"] == "pixels-undecodable"
    assert "(7FE0,0010)" in row["detail"]
