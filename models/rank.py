"""One training rank: ``python -m torch.distributed.run [...] -m models.rank LAUNCH.json`` (see models/launch.py).

Each rank trains ``TrainConfig`` from the launch file with Lightning's DDPStrategy on the torchrun environment.
Rank 0 writes ``result.json`` beside the launch file (run id, run directory, metrics); a rank that fails writes
``failure-<rank>.json`` with its error in redacted form (:mod:`flows.redact`: the full traceback stays in the
state directory's ``errors/``, mode 0600) and exits 1.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path

from models.launch import RESULT_FILE, read_launch_file


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: torchrun [...] -m models.rank LAUNCH.json", file=sys.stderr)
        return 2
    from flows.redact import redacted_errors
    from models.training import train_model
    from tasks.errors import MedflowError

    launch_file = Path(args[0])
    rank = int(os.environ.get("RANK", "0"))
    logging.basicConfig(level=logging.INFO, format=f"rank {rank} %(levelname)s %(name)s: %(message)s")
    try:
        with redacted_errors(f"train-rank-{rank}"):
            result = train_model(read_launch_file(launch_file))
    except MedflowError as error:  # already redacted: no path, no raw third-party text
        (launch_file.parent / f"failure-{rank}.json").write_text(json.dumps({"rank": rank, "message": str(error)}))
        print(f"rank {rank}: {error}", file=sys.stderr)
        return 1
    if rank == 0:
        record = {"run_id": result.run_id, "run_dir": str(result.run_dir), "metrics": result.metrics}
        tmp = launch_file.parent / f".{RESULT_FILE}.tmp"
        tmp.write_text(json.dumps(record))
        tmp.replace(launch_file.parent / RESULT_FILE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
