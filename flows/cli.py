"""The ``medflow`` command line. Each command lives in ``flows/commands/<name>.py``.

Commands import their heavy dependencies (torch, Prefect, pydicom) inside the command body, so
``medflow --help`` stays fast.
"""

from __future__ import annotations

import typer

from flows.commands import (
    audit,
    deid,
    deid_table,
    demo,
    evaluate,
    export,
    federate,
    ingest,
    keygen,
    labels,
    listen,
    predict,
    pretrain,
    serve,
    server,
    synth,
    train,
)

app = typer.Typer(
    name="medflow",
    help="De-identified, quality-checked, ML-ready datasets from clinical DICOM, and models trained on them.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold PHI
)

# Registered commands (one line each; keep alphabetical).
app.command("audit")(audit.command)
app.command("deid")(deid.command)
app.command("deid-table")(deid_table.command)
app.command("demo")(demo.command)
app.command("evaluate")(evaluate.command)
app.command("export")(export.command)
app.command("federate")(federate.command)
app.command("ingest")(ingest.command)
app.command("keygen")(keygen.command)
app.add_typer(labels.app, name="labels")
app.command("listen")(listen.command)
app.command("predict")(predict.command)
app.command("pretrain")(pretrain.command)
app.command("serve")(serve.command)
app.command("server")(server.command)
app.command("synth")(synth.command)
app.command("train")(train.command)
