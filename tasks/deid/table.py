"""Pseudonymise a clinical table (CSV) so it joins the de-identified images: an allow-list, not a deny-list.

Only what the caller names is written: the id column (exactly the pseudonymous PatientID the images of that
patient get), the date columns (moved by the same per-patient offset), the age columns (ages over 89 reported as
90, the rule the images follow: :data:`tasks.deid.actions.MAX_AGE_YEARS`) and the columns given to keep. Every
other column is dropped. A kept column whose values look identifying (:mod:`tasks.deid.table_screen`) is refused
unless forced. Values are handled as text (no type guessing).

Beside ``OUT.csv`` the function writes ``OUT.csv.deid.json``, the *record*: which columns were kept in which role
and the SHA-256 of the CSV it describes. Training reads labels only through :func:`read_record`, so a table that
did not come out of ``deid-table``, or was edited after it, is refused, and a model only ever sees kept columns.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import re
from collections.abc import Iterable
from pathlib import Path

from tasks.atomic import atomic_write_bytes
from tasks.deid.actions import MAX_AGE_YEARS, cap_age
from tasks.deid.pseudonyms import Pseudonymizer
from tasks.deid.table_screen import column_reason, header_reason, name_values
from tasks.errors import ConfigError, InputError

RECORD_SUFFIX = ".deid.json"
RECORD_FORMAT = "medflow-deid-table/1"
_ISO = re.compile(r"^(\d{4})-(\d{2})-(\d{2})(.*)$")
_DICOM = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_YEARS = re.compile(r"^\d{1,3}(\.\d+)?$")


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


def cap_age_text(value: str) -> str | None:
    """An age in years (``95``, ``95.5``) or as DICOM AS (``095Y``), ages over 89 as 90; ``None`` if not an age."""
    value = value.strip()
    if _YEARS.match(value):
        return str(MAX_AGE_YEARS) if float(value) >= MAX_AGE_YEARS else value
    return cap_age(value)


def record_path(table: Path) -> Path:
    """Where the record of a de-identified table lives: ``OUT.csv`` -> ``OUT.csv.deid.json``."""
    table = Path(table)
    return table.with_name(table.name + RECORD_SUFFIX)


def write_record(table: Path, data: bytes, roles: dict[str, list[str]], source: str = "medflow deid-table") -> None:
    """Write the record of ``table`` (whose bytes are ``data``): roles of its columns and its digest. No values."""
    header = next(csv.reader(io.StringIO(data.decode("utf-8"))), [])
    record = {
        "format": RECORD_FORMAT,
        "source": source,
        "columns": header,
        "roles": roles,
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    atomic_write_bytes(record_path(table), (json.dumps(record, indent=1) + "\n").encode())


def write_labels(frame, table: Path, *, id_col: str, date_cols: Iterable[str] = (), source: str) -> None:
    """Write an already pseudonymous labels frame (e.g. a synthetic one) with its record, every column kept."""
    data = frame.to_csv(index=False, lineterminator="\n").encode()
    atomic_write_bytes(Path(table), data)
    dates = [c for c in date_cols if c in frame.columns]
    kept = [c for c in frame.columns if c != id_col and c not in dates]
    write_record(Path(table), data, {"id": [id_col], "dates": dates, "ages": [], "kept": kept, "forced": []}, source)


def read_record(table: Path) -> dict:
    """The record of a de-identified table, checked against the table's bytes; a clear error otherwise."""
    table = Path(table)
    path = record_path(table)
    try:
        record = json.loads(path.read_text())
        data = table.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            f"the labels table has no de-identification record ({path.name}); write the table with "
            "`medflow deid-table IN.csv OUT.csv --id-col ... --keep ...`, which keeps only the columns you name"
        ) from None
    except (OSError, ValueError):
        raise ConfigError(f"cannot read the labels table or its record ({path.name})") from None
    if record.get("format") != RECORD_FORMAT:
        raise ConfigError(f"{path.name} is not a medflow deid-table record")
    if hashlib.sha256(data).hexdigest() != record.get("sha256"):
        raise ConfigError(
            "the labels table changed after `medflow deid-table` wrote it; run deid-table again on the source table"
        )
    return record


def _split_roles(columns: list[str], id_col: str, date_cols: list[str], keep: list[str], age_cols: list[str]) -> None:
    named = [id_col, *date_cols, *keep, *age_cols]
    missing = [c for c in dict.fromkeys(named) if c not in columns]
    if missing:
        raise ConfigError(f"column(s) {', '.join(missing)} not in the table; columns are: {', '.join(columns)}")
    seen: dict[str, int] = {}
    for c in named:
        seen[c] = seen.get(c, 0) + 1
    twice = [c for c, n in seen.items() if n > 1]
    if twice:
        roles = "--id-col/--date-cols/--keep/--age-cols"
        raise ConfigError(f"column(s) {', '.join(twice)} named in more than one of {roles}")


def deidentify_table(
    table_in: Path,
    table_out: Path,
    pseudonyms: Pseudonymizer,
    *,
    id_col: str,
    date_cols: list[str],
    keep: list[str] | None = None,
    age_cols: list[str] | None = None,
    force_keep: list[str] | None = None,
) -> dict[str, object]:
    """Write the de-identified table and its record atomically; return a PHI-free summary (column names, counts)."""
    keep, age_cols, force_keep = list(keep or []), list(age_cols or []), list(force_keep or [])
    try:
        text = Path(table_in).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError):
        raise InputError("cannot read the input table as UTF-8 CSV") from None
    reader = csv.DictReader(io.StringIO(text))
    columns = list(reader.fieldnames or [])
    for number, column in enumerate(columns, start=1):
        reason = header_reason(column)
        if reason:  # the first row is data: never print it back
            raise InputError(
                f"the table's first row does not look like column names (column {number} {reason}); "
                "give the CSV a header row"
            )
    _split_roles(columns, id_col, date_cols, keep, age_cols)
    stray = [c for c in force_keep if c not in keep]
    if stray:
        raise ConfigError(f"--force-keep names column(s) not given with --keep: {', '.join(stray)}")
    rows = list(reader)
    names = name_values(rows, [c for c in columns if "name" in c.lower()] + [id_col])
    for col in keep:
        reason = column_reason(col, (r.get(col) or "" for r in rows), names)
        if reason and col not in force_keep:
            raise ConfigError(f"column {col} {reason}; drop it, or keep it anyway with --force-keep {col}")
    wanted = set([id_col, *date_cols, *keep, *age_cols])
    kept = [c for c in columns if c in wanted]
    dropped = [c for c in columns if c not in wanted]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=kept, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    written = dropped_rows = capped = 0
    for number, row in enumerate(rows, start=2):
        original = (row.get(id_col) or "").strip()
        if not original:
            dropped_rows += 1
            continue
        offset = pseudonyms.date_offset_days(original, "")
        new = {c: row.get(c) or "" for c in kept}
        new[id_col] = pseudonyms.patient_id(original)
        for col in date_cols:
            value = new[col].strip()
            if value:
                shifted = shift_date_text(value, offset)
                if shifted is None:
                    raise InputError(f"line {number}, column {col}: not a date (use YYYY-MM-DD or YYYYMMDD)")
                new[col] = shifted
        for col in age_cols:
            value = new[col].strip()
            if value:
                age = cap_age_text(value)
                if age is None:
                    raise InputError(f"line {number}, column {col}: not an age (years, or DICOM AS such as 045Y)")
                capped += age != value
                new[col] = age
        writer.writerow(new)
        written += 1
    data = out.getvalue().encode()
    roles = {"id": [id_col], "dates": list(date_cols), "ages": age_cols, "kept": keep, "forced": force_keep}
    atomic_write_bytes(Path(table_out), data)
    write_record(Path(table_out), data, roles)
    return {
        "rows": written,
        "dropped_rows": dropped_rows,
        "dropped_columns": dropped,
        "columns": kept,
        "ages_capped": capped,
        "forced": force_keep,
    }
