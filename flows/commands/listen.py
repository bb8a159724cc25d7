"""``medflow listen``: a DICOM listener (C-STORE SCP, optional STOW-RS) that ingests each completed study.

On its own it ingests every study into ``--dataset`` itself, one study at a time, through the Prefect flow
``ingest-study`` (against PREFECT_API_URL, or a temporary local server). When a ``medflow serve`` serves this
listener's deployment (``ingest-study/ingest-<name>`` is READY), it only emits ``medflow.study.received`` and
the automation runs the ingest there. Stop it with Ctrl-C or SIGTERM: what was acknowledged stays staged and
is ingested after the next start.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
from pathlib import Path
from typing import Annotated

import typer

from flows.commands.options import CleanPixels, KeyFile, Workers


class StudyIngester:
    """Ingests reported studies one at a time in a background thread, or hands them to ``medflow serve``."""

    def __init__(
        self, listener: str, dataset: str, key_file: str | None, workers: int, clean_pixels: str | None
    ) -> None:
        """``dataset`` and ``key_file`` are location names (handles registered by the command)."""
        self.listener = listener
        self.dataset = dataset
        self.key_file = key_file
        self.workers = workers
        self.clean_pixels = clean_pixels
        self.ingested = 0
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="ingest-studies", daemon=True)
        self._thread.start()

    def __call__(self, study) -> None:
        from flows.study import emit_study_received, served_elsewhere

        log = logging.getLogger("tasks.sources.listener")
        if served_elsewhere(self.listener):
            emit_study_received(self.listener, study)
            log.info("listener %s: study %s handed to medflow serve", self.listener, study.token[:8])
        else:
            self._queue.put(study.token)

    def close(self) -> None:
        """Finish the ingest that is running; studies still queued are ingested after the next start."""
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        from flows.study import ingest_study

        log = logging.getLogger("tasks.sources.listener")
        while (token := self._queue.get()) is not None:
            try:
                ingest_study(
                    listener=self.listener,
                    study=token,
                    dataset=self.dataset,
                    key_file=self.key_file,
                    workers=self.workers,
                    clean_pixels=self.clean_pixels,
                )
                self.ingested += 1
            except Exception as exc:  # the study stays staged; the next start (or a late instance) retries it
                log.error("listener %s: ingest of study %s failed (%s)", self.listener, token[:8], type(exc).__name__)


def command(
    dataset: Annotated[Path, typer.Option("--dataset", help="Dataset folder each completed study is ingested into.")],
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="DIMSE port (C-STORE, C-ECHO).")],
    key_file: KeyFile = None,
    ae_title: Annotated[str, typer.Option("--ae-title", help="Our AE title.")] = "MEDFLOW",
    allow_ae: Annotated[
        list[str] | None, typer.Option("--allow-ae", help="Calling AE title to accept (repeat; default: any).")
    ] = None,
    allow_host: Annotated[
        list[str] | None,
        typer.Option("--allow-host", help="Peer address or network (CIDR) to accept (repeat; default: loopback)."),
    ] = None,
    quiet_seconds: Annotated[
        float, typer.Option("--quiet-seconds", min=0.1, help="A study is complete after this long without news.")
    ] = 60.0,
    name: Annotated[str, typer.Option("--name", help="Listener name (staging folder, events, deployment).")] = "listen",
    bind: Annotated[str, typer.Option("--bind", help="Address to listen on.")] = "127.0.0.1",
    stow_port: Annotated[int | None, typer.Option("--stow-port", help="Also serve STOW-RS on this port.")] = None,
    modality: Annotated[
        list[str] | None, typer.Option("--modality", help="Route only this modality to ingest (repeat; default: all).")
    ] = None,
    tls_cert: Annotated[Path | None, typer.Option("--tls-cert", help="PEM certificate: TLS on both ports.")] = None,
    tls_key: Annotated[Path | None, typer.Option("--tls-key", help="PEM private key of --tls-cert.")] = None,
    tls_ca: Annotated[
        Path | None, typer.Option("--tls-ca", help="PEM CAs: clients must present a certificate.")
    ] = None,
    max_associations: Annotated[int, typer.Option("--max-associations", min=1, help="Concurrent associations.")] = 8,
    max_staged_gb: Annotated[
        float, typer.Option("--max-staged-gb", min=0.001, help="Refuse instances while this much is staged.")
    ] = 20.0,
    journal_mb: Annotated[
        int, typer.Option("--journal-mb", min=8, help="Write-ahead journal (MiB): a burst acknowledged before staging.")
    ] = 128,
    workers: Workers = None,
    clean_pixels: CleanPixels = None,
    state_dir: Annotated[Path | None, typer.Option("--state-dir", help="State directory (staging area).")] = None,
) -> None:
    """Receive DICOM (C-STORE, STOW-RS) and ingest each study once it has been quiet for --quiet-seconds."""
    from pydantic import ValidationError
    from rich.console import Console

    from deployments.server import temporary_api
    from tasks.config import load_settings
    from tasks.deid.keys import load_key
    from tasks.errors import MedflowError
    from tasks.locations import LocationKind, Locations
    from tasks.sources.config import LOOPBACK, SourceConfig, SourceKind, TlsConfig
    from tasks.sources.listener import Listener, log_to_console

    console = Console(stderr=True)
    settings = load_settings(key_file=key_file, state_dir=state_dir, workers=workers)
    try:
        config = SourceConfig(
            name=name,
            kind=SourceKind.LISTENER,
            port=port,
            bind=bind,
            ae_title=ae_title,
            allow_ae=allow_ae or [],
            allow_hosts=allow_host or list(LOOPBACK),
            quiet_seconds=quiet_seconds,
            modalities=modality or [],
            stow_port=stow_port,
            tls=TlsConfig(cert_file=tls_cert, key_file=tls_key, ca_file=tls_ca) if tls_cert or tls_key else None,
            max_associations=max_associations,
            max_staged_bytes=int(max_staged_gb * 1024**3),
            journal_mb=journal_mb,
        )
        key = load_key(settings=settings)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_input=False))
        console.print(f"[red]error:[/red] invalid listener options: {problems}")
        raise typer.Exit(2) from None
    except MedflowError as error:
        console.print(f"[red]error:[/red] {error}")
        raise typer.Exit(2) from None

    log_to_console()
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with temporary_api():
        locations = Locations.from_settings(settings)
        ingester = StudyIngester(
            name,
            locations.register(LocationKind.DATASET, dataset),
            locations.register(LocationKind.KEY, settings.key_file) if settings.key_file else None,
            settings.workers,
            clean_pixels,
        )
        try:
            listener = Listener(config, key.secret, settings.state_dir, ingester).start()
        except (OSError, MedflowError) as error:
            ingester.close()
            console.print(f"[red]error:[/red] listener {name} could not start: {error}")
            raise typer.Exit(2) from None
        stow = f", STOW-RS on {bind}:{listener.stow_port}" if listener.stow else ""
        console.print(f"listening as {ae_title} on {bind}:{listener.dimse_port}{stow} (Ctrl-C to stop)")
        try:
            stop.wait()
        finally:
            listener.stop()
            ingester.close()
    console.print(f"stopped; {ingester.ingested} studies ingested")
