"""Generate ``tasks/deid/annex_e.json`` from the machine-readable copy of DICOM PS3.15 Table E.1-1.

Run once when the standard release changes (the generated file is committed in the package)::

    python -m tasks.deid.generate_profile /path/to/ps3.15-annex-e-table.json

Each output row: ``tag`` (8 hex digits, ``x`` for a repeating nibble, or ``"private"``), ``name``,
``keyword`` and ``vr`` from pydicom's data dictionary (empty for patterns), ``basic`` (the Basic
Profile action code) and ``options`` (option name -> ``K`` or ``C``, only where the option changes it).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydicom.datadict import dictionary_keyword, dictionary_VR

OUTPUT = Path(__file__).with_name("annex_e.json")
STANDARD_RELEASE = "2024b"

#: Column of the source table -> option name used by medflow (``tasks.deid.options.DeidOption`` values).
OPTION_COLUMNS: dict[str, str] = {
    "rtnLongFullDatesOpt": "retain-longitudinal-full-dates",
    "rtnLongModifDatesOpt": "retain-longitudinal-modified-dates",
    "cleanDescOpt": "clean-descriptors",
    "rtnUIDsOpt": "retain-uids",
    "rtnDevIdOpt": "retain-device-identity",
    "rtnPatCharsOpt": "retain-patient-characteristics",
    "rtnInstIdOpt": "retain-institution-identity",
    "cleanGraphOpt": "clean-graphics",
    "cleanStructContOpt": "clean-structured-content",
    "rtnSafePrivOpt": "retain-safe-private",
}


def convert_row(row: dict[str, str]) -> dict[str, object]:
    """One row of the standard's table in the project's format."""
    raw = row["tag"].strip()
    if raw.upper().startswith("(GGGG,EEEE)"):
        tag, keyword, vr = "private", "", ""
    else:
        tag = raw.strip("()").replace(",", "").lower()
        if "x" in tag:
            keyword, vr = "", ""
        else:
            value = int(tag, 16)
            try:
                keyword, vr = dictionary_keyword(value), dictionary_VR(value)
            except KeyError:
                keyword, vr = "", ""
    options = {OPTION_COLUMNS[k]: v for k, v in row.items() if k in OPTION_COLUMNS and v}
    return {
        "tag": tag,
        "name": row["name"],
        "keyword": keyword,
        "vr": vr,
        "basic": row["basicProfile"],
        "options": options,
    }


def generate(source: Path, output: Path = OUTPUT) -> int:
    """Write the project table; return the number of rows."""
    rows = [convert_row(r) for r in json.loads(source.read_text())]
    rows.sort(key=lambda r: str(r["tag"]))
    doc = {"standard": f"DICOM PS3.15 Table E.1-1, release {STANDARD_RELEASE}", "rows": rows}
    output.write_text(json.dumps(doc, indent=1, sort_keys=True) + "\n")
    return len(rows)


if __name__ == "__main__":
    n = generate(Path(sys.argv[1]))
    print(f"wrote {n} rows to {OUTPUT}")
