"""Pseudonymise a clinical table (CSV) so it joins the de-identified images.

The id column becomes exactly the pseudonymous PatientID the images of that patient get; date
columns move by the same per-patient offset; columns whose name contains "name" and the columns
given in ``drop_cols`` are dropped. Values are handled as text (no type guessing).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from pathlib import Path

from tasks.atomic import atomic_write_bytes
from tasks.deid.pseudonyms import Pseudonymizer
from tasks.errors import ConfigError, InputError

_ISO = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(.*)$")
_DICOM = re.compile(r"^(\d{4})(\d{2})(\d{2})$")


def shift_date_text(value: str, days: int) -> str | None:
    """Shift ``YYYY-MM-DD[...time]`` or ``YYYYMMDD`` keeping the format; ``None`` if not a date."""
    value = value.strip()
    for pattern, fmt in ((_ISO, "{:04d}-{:02d}-{:02d}"), (_DICOM, "{:04d}{:02d}{:02d}")):
        m = pattern.match(value)
        if m:
            try:
                d = dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3))) + dt.timedelta(days=days)
            except (ValueError, OverflowError):
                return None
            rest = m.group(4) if pattern is _ISO else ""
            return fmt.format(d.year, d.month, d.day) + rest
    return None


def deidentify_table(
    table_in: Path,
    table_out: Path,
    pseudonyms: Pseudonymizer,
    *,
    id_col: str,
    date_cols: list[str],
    drop_cols: list[str] | None = None,
) -> dict[str, object]:
    """Write the pseudonymised table atomically; return a PHI-free summary."""
    try:
        text = Path(table_in).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError):
        raise InputError("cannot read the input table as UTF-8 CSV") from None
    reader = csv.DictReader(io.StringIO(text))
    columns = list(reader.fieldnames or [])
    missing = [c for c in [id_col, *date_cols] if c not in columns]
    if missing:
        raise ConfigError(f"column(s) {', '.join(missing)} not in the table; columns are: {', '.join(columns)}")
    drop = {c for c in (drop_cols or []) if c in columns} | {c for c in columns if "name" in c.lower() and c != id_col}
    kept = [c for c in columns if c not in drop]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=kept, lineterminator="\n")
    writer.writeheader()
    rows = dropped_rows = 0
    for number, row in enumerate(reader, start=2):
        original = (row.get(id_col) or "").strip()
        if not original:
            dropped_rows += 1
            continue
        offset = pseudonyms.date_offset_days(original, "")
        new = {c: row.get(c, "") for c in kept}
        new[id_col] = pseudonyms.patient_id(original)
        for col in date_cols:
            value = (row.get(col) or "").strip()
            if value:
                shifted = shift_date_text(value, offset)
                if shifted is None:
                    raise InputError(f"line {number}, column {col}: not a date (use YYYY-MM-DD or YYYYMMDD)")
                new[col] = shifted
        writer.writerow(new)
        rows += 1
    atomic_write_bytes(Path(table_out), out.getvalue().encode())
    return {"rows": rows, "dropped_rows": dropped_rows, "dropped_columns": sorted(drop), "columns": kept}
