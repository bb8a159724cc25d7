"""``python tests/tasks/ingest/plain.py ingest|deid|audit SOURCE OUTPUT``: one plain-Python run, its summary (or
``{"error": message}`` for a medflow error) as JSON on stdout. Used to run under restricted privileges."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path


def main() -> None:
    from tasks.deid.context import DeidContext
    from tasks.deid.keys import DeidKey
    from tasks.errors import MedflowError

    mode, source, output = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    ctx = DeidContext.create(DeidKey(b"k" * 32), clean_pixels="off")
    try:
        if mode == "ingest":
            from tasks.ingest.folder import ingest_folder

            result = ingest_folder(source, output, ctx, workers=1).as_dict()
        elif mode == "deid":
            from tasks.deid.folder import deidentify_folder

            result = asdict(deidentify_folder(source, output, ctx, workers=1, progress=False))
        else:
            from tasks.audit import audit_dataset

            result = audit_dataset(output, source, ocr=False).to_dict()
    except MedflowError as error:
        result = {"error": str(error), "type": type(error).__name__}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
