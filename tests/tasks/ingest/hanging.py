"""Run ingest or de-identification on a folder where one real file's pixel decode blocks forever.

``python -m``-less script: ``python tests/tasks/ingest/hanging.py ingest|deid|flow SOURCE OUTPUT SECONDS``
prints the run's summary as JSON. Its top level registers :mod:`tests.tasks.ingest.blocking_decoder` as the only
RLE Lossless decoder; worker processes get it because the fork server of :class:`tasks.workers.WorkerPool`
imports the main module (``__main__`` is preloaded), as it would any program's.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

from pydicom.pixels.decoders import RLELosslessDecoder

for _label in list(RLELosslessDecoder.available_plugins) + list(RLELosslessDecoder.missing_dependencies):
    RLELosslessDecoder.remove_plugin(_label.split(" ")[0])
RLELosslessDecoder.add_plugin("blocking", ("tests.tasks.ingest.blocking_decoder", "decode_frame"))

KEY = b"k" * 32


def main() -> None:
    mode, source, output, seconds = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), float(sys.argv[4])
    from tasks.deid.context import DeidContext
    from tasks.deid.keys import DeidKey

    if mode == "ingest":
        ctx = DeidContext.create(DeidKey(KEY), clean_pixels="off")
        from tasks.ingest.folder import ingest_folder
        from tasks.ingest.options import IngestOptions

        summary = ingest_folder(source, output, ctx, IngestOptions(file_timeout_s=seconds), workers=2)
        print(json.dumps(summary.as_dict()))
    elif mode == "deid":  # de-identification decodes pixels only to clean them: SC is cleaned under "auto"
        from tasks.deid.folder import deidentify_folder

        ctx = DeidContext.create(DeidKey(KEY), clean_pixels="auto")
        summary = deidentify_folder(source, output, ctx, workers=2, progress=False, file_timeout_s=seconds)
        print(json.dumps(asdict(summary)))
    elif mode == "flow":  # the Prefect flow (PREFECT_API_URL set by the caller); the limit from MEDFLOW_FILE_TIMEOUT_S
        import os

        from flows.ingest import ingest
        from tasks.locations import LocationKind, Locations

        os.environ["MEDFLOW_FILE_TIMEOUT_S"] = str(seconds)
        os.environ["MEDFLOW_STATE_DIR"] = str(output.parent / "state")  # where the location names are registered
        key = output.parent / "flow.key"
        key.write_text(KEY.hex())
        key.chmod(0o600)
        places = Locations.from_settings()
        names = {
            "source": places.register(LocationKind.SOURCE, source),
            "dataset": places.register(LocationKind.DATASET, output),
            "key_file": places.register(LocationKind.KEY, key),
        }
        print(json.dumps(ingest(**names, workers=2, clean_pixels="off")))
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
