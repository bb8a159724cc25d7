"""Instances per second a DICOM receiver accepts and makes durable: medflow's listener against dcmtk's storescp.

Sender for every run: dcmtk's ``storescu`` (one association, the whole folder), same machine, loopback.
Receivers, started fresh for each run and in rotating order (a shared machine's load hits all of them):

* ``medflow``: ``tasks.sources.listener.Listener`` in its own process (pynetdicom negotiates the association; each
  C-STORE is answered below it, its data set staged from the PDU buffer or spooled to disk as it arrives,
  ``tasks.sources.spool``). It acknowledges an instance only after the file *and* its folder entry are fsynced:
  the only mode it has;
* ``storescp``: dcmtk's storescp as it ships (``+B`` bit-preserving, the fastest way it writes; ``+xa`` to
  accept the JPEG cines, ``-pdu 131072``, its largest). It does **not** fsync: an acknowledged instance can
  still be lost in a power cut;
* ``storescp+fsync``: the same, with equal durability: an ``LD_PRELOAD`` shim (compiled here with gcc) fsyncs
  every written file and its folder when storescp closes it, before the C-STORE response goes out.

PDU sizes are the same for every receiver: storescu sends P-DATA PDUs of at most 128 KiB (dcmtk's largest, also
``storescu --max-send-pdu``'s upper bound; a cine arrives as 131,072-byte PDUs), which storescp (``-pdu
131072``) and the listener (maximum 4 MiB, ``tasks.sources.scp.MAX_PDU``) both accept.

dcmtk's Debian build leaves Nagle's algorithm on unless ``TCP_NODELAY=1`` is set (~90 ms per instance
otherwise), so it is set for storescu and storescp alike. Rate = instances / storescu's wall time (start to
the last response); the summary gives the ratio of medians and the median of per-round ratios (medflow / peer
in the same round: a virtual disk whose speed drifts over minutes distorts it less). Zero lost: after each run
the received files are read back and their SOP Instance UIDs compared with what was sent.

Corpus (pydicom-data files with new UIDs): ``--ct`` slices of CT_small.dcm (128×128, 39 kB, 100 per study) and
``--us`` cines of color3d_jpeg_baseline.dcm (120 frames 480×640, JPEG baseline, 6.1 MB, 10 per study).

Latency (``--latency-studies``): a real Prefect server and ``medflow serve`` with a listener
(``--quiet-seconds``); each study (20 CT slices) is sent with storescu and the time from its last
acknowledgement to the start of its ``ingest-study`` run is reported, split into the quiet period, the event
and automation (run created) and the runner picking the run up (run started). Usage::

    python bench/listen.py [--ct 1000] [--us 50] [--repeat 3] [--parallel 4] [--nagle 200] [--latency-studies 3]
                           [--quiet-seconds 5]

``--nagle N`` adds one round of N CT slices with ``TCP_NODELAY`` unset for dcmtk, as Debian ships it (pynetdicom
senders leave Nagle's algorithm on too): the sender then holds each data set PDU until its command PDU is acknowledged,
which a receiver's delayed ACK makes ~40-90 ms (the listener acknowledges at once, ``TCP_QUICKACK``).

``--parallel N`` adds runs with N storescu processes at once, each sending whole studies (storescp then runs
with ``--fork``, a process per association; the listener takes them on threads).

Prints the figures and writes ``bench/results/listen.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
KEY_HEX = "5a" * 32
ENV = {**os.environ, "TCP_NODELAY": "1"}

SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
static int (*real_close)(int);
static int (*real_fclose)(FILE *);
static void durable(int fd) {
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (fcntl(fd, F_GETFL) & O_ACCMODE) == O_RDONLY) return;
  fsync(fd);
  char link[64], path[4096];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, path, sizeof path - 1);
  if (n <= 0) return;
  path[n] = 0;
  int dir = open(dirname(path), O_RDONLY | O_DIRECTORY);
  if (dir >= 0) { fsync(dir); real_close(dir); }
}
int close(int fd) {
  if (!real_close) real_close = dlsym(RTLD_NEXT, "close");
  durable(fd);
  return real_close(fd);
}
int fclose(FILE *f) {
  if (!real_fclose) real_fclose = dlsym(RTLD_NEXT, "fclose");
  if (!real_close) real_close = dlsym(RTLD_NEXT, "close");
  fflush(f);
  durable(fileno(f));
  return real_fclose(f);
}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def build_corpus(root: Path, ct: int, us: int) -> dict[str, Path]:
    """CT slices (100 per study) and ultrasound cines (10 per study), every instance with new UIDs."""
    import pydicom
    from pydicom.data import get_testdata_file
    from pydicom.uid import generate_uid

    def replicate(name: str, folder: Path, n: int, per_study: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        ds = pydicom.dcmread(get_testdata_file(name))
        for i in range(n):
            if i % per_study == 0:
                ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
            ds.InstanceNumber = i % per_study + 1
            ds.save_as(folder / f"{i:05d}.dcm")

    corpora = {}
    if ct:
        replicate("CT_small.dcm", root / "ct", ct, 100)
        corpora["ct"] = root / "ct"
    if us:
        replicate("color3d_jpeg_baseline.dcm", root / "us", us, 10)
        corpora["us"] = root / "us"
    return corpora


def sent_uids(folder: Path) -> set[str]:
    import pydicom

    return {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID) for p in sorted(folder.iterdir())}


def received_uids(folder: Path) -> set[str]:
    import pydicom

    uids = set()
    for path in folder.rglob("*"):
        if path.is_file() and not path.name.startswith("."):
            uids.add(str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID))
    return uids


def wait_echo(port: int, process: subprocess.Popen, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"receiver exited with {process.returncode}")
        if (
            subprocess.run(
                ["echoscu", "-aec", "MEDFLOW", "127.0.0.1", str(port)], capture_output=True, env=ENV
            ).returncode
            == 0
        ):
            return
        time.sleep(0.2)
    raise RuntimeError("receiver did not answer C-ECHO")


def receiver(
    kind: str, out: Path, port: int, shim: Path | None, fork: bool = False, base_env: dict[str, str] = ENV
) -> subprocess.Popen:
    """Start one receiver writing below ``out`` (``fork``: storescp forks a process per association)."""
    out.mkdir(parents=True)
    if kind == "medflow":
        command = [sys.executable, __file__, "--run-listener", str(out), "--port", str(port)]
        return subprocess.Popen(command, env={**base_env, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL)
    env = dict(base_env)
    if kind == "storescp+fsync":
        env["LD_PRELOAD"] = str(shim)
    command = ["storescp", "-aet", "MEDFLOW", "+B", "+xa", "-pdu", "131072", "-od", str(out), str(port)]
    if fork:
        command.insert(1, "--fork")
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def one_run(
    kind: str, folders: list[Path], work: Path, shim: Path | None, expected: set[str], env: dict[str, str] = ENV
) -> dict[str, float]:
    """One storescu per folder, all at once (one folder: the plain sequential case)."""
    out, port = work / f"{kind}-{time.monotonic_ns()}", free_port()
    process = receiver(kind, out, port, shim, fork=len(folders) > 1, base_env=env)
    try:
        wait_echo(port, process)
        started = time.perf_counter()
        senders = [
            subprocess.Popen(
                ["storescu", "-aec", "MEDFLOW", "-xy", "+sd", "127.0.0.1", str(port), str(folder)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for folder in folders
        ]
        errors = [sender.communicate()[1] for sender in senders]
        seconds = time.perf_counter() - started
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    if any(sender.returncode != 0 for sender in senders):
        raise RuntimeError(f"storescu failed for {kind}: {''.join(errors)[-1500:]}")
    got = received_uids(out)
    return {
        "seconds": seconds,
        "per_s": len(expected) / seconds,
        "lost": len(expected - got),
        "extra": len(got - expected),
    }


def split(corpus: Path, parts: int) -> list[Path]:
    """The corpus as ``parts`` folders of whole studies (hard links), for parallel senders."""
    import pydicom

    folders = [corpus.parent / f"{corpus.name}-part{i}" for i in range(parts)]
    studies: dict[str, int] = {}
    for folder in folders:
        folder.mkdir(exist_ok=True)
    for path in sorted(corpus.iterdir()):
        study = str(pydicom.dcmread(path, stop_before_pixels=True).StudyInstanceUID)
        index = studies.setdefault(study, len(studies) % parts)
        target = folders[index] / path.name
        if not target.exists():
            os.link(path, target)
    return folders


def throughput(
    corpora: dict[str, Path], work: Path, repeat: int, shim: Path | None, parallel: int, nagle: bool = False
) -> dict:
    """Rotated rounds per corpus; ``nagle``: dcmtk as Debian ships it, TCP_NODELAY unset (sender and storescp)."""
    env = {k: v for k, v in ENV.items() if k != "TCP_NODELAY"} if nagle else ENV
    kinds = ["medflow", "storescp"] + (["storescp+fsync"] if shim else [])
    results: dict = {}
    for name, corpus in corpora.items():
        expected = sent_uids(corpus)
        folders = [corpus] if parallel <= 1 else split(corpus, parallel)
        runs: dict[str, list[dict]] = {k: [] for k in kinds}
        for r in range(repeat):
            for kind in kinds[r % len(kinds) :] + kinds[: r % len(kinds)]:
                runs[kind].append(one_run(kind, folders, work, shim, expected, env))
                label = f"{name}{' nagle' if nagle else ''} x{len(folders)}"
                print(f"  {label} {kind:15s} run {r + 1}: {runs[kind][-1]['per_s']:8.1f} instances/s, "
                      f"lost {runs[kind][-1]['lost']}", flush=True)  # fmt: skip
        results[(name if parallel <= 1 else f"{name}-x{parallel}") + ("-nagle" if nagle else "")] = {
            "instances": len(expected),
            "runs": runs,
            "median_per_s": {k: statistics.median(x["per_s"] for x in v) for k, v in runs.items()},
            "paired_ratio": {  # medflow / peer within each round, median over rounds (a drifting disk hits both)
                k: statistics.median(m["per_s"] / p["per_s"] for m, p in zip(runs["medflow"], v, strict=True))
                for k, v in runs.items()
                if k != "medflow"
            },
            "lost": {k: sum(x["lost"] for x in v) for k, v in runs.items()},
        }
    return results


def run_listener(out: Path, port: int) -> None:
    """The medflow receiver: a Listener staging into ``out`` (never reporting during a run)."""
    from tasks.sources import SourceConfig, SourceKind
    from tasks.sources.listener import Listener

    config = SourceConfig(name="bench", kind=SourceKind.LISTENER, port=port, quiet_seconds=3600, max_associations=8)
    stop = [False]
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__(0, True))
    with Listener(config, bytes.fromhex(KEY_HEX), out, lambda study: None):
        while not stop[0]:
            time.sleep(0.1)


async def _study_runs() -> list:
    from prefect import get_client

    async with get_client() as client:
        flows = {f.id: f.name for f in await client.read_flows()}
        return [r for r in await client.read_flow_runs() if flows.get(r.flow_id) == "ingest-study"]


def latency(work: Path, studies: int, quiet_s: float) -> dict:
    """Last acknowledgement of a study → its ingest-study run created / started, through ``medflow serve``."""
    import pydicom

    from deployments.server import local_server, start
    from tasks.sources.inbox import study_token

    state = work / "latency-state"
    server = local_server(state, port=free_port())
    prefect = start(server, timeout_s=300)
    os.environ["PREFECT_API_URL"] = server.api_url
    key = work / "bench.key"
    key.write_text(KEY_HEX)
    key.chmod(0o600)
    port = free_port()
    sources = work / "sources.yaml"
    sources.write_text(
        json.dumps({"sources": [{"name": "bench", "kind": "listener", "port": port, "quiet_seconds": quiet_s}]})
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MEDFLOW_STATE_DIR": str(state)}
    log = (work / "serve.log").open("w")
    serve = subprocess.Popen(
        [str(Path(sys.executable).parent / "medflow"), "serve", "--dataset", str(work / "latency-dataset"),
         "--sources-file", str(sources), "--key-file", str(key), "--workers", "1", "--gpus", "1",
         "--threshold", "1000000000"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    rows = []
    try:
        wait_echo(port, serve, timeout_s=300)
        time.sleep(5)  # the runner registers the deployment and its automation
        for i in range(studies):
            folder = build_corpus(work / f"latency-{i}", 20, 0)["ct"]
            token = study_token(bytes.fromhex(KEY_HEX), pydicom.dcmread(next(folder.iterdir())).StudyInstanceUID)
            subprocess.run(
                ["storescu", "-aec", "MEDFLOW", "+sd", "127.0.0.1", str(port), str(folder)], env=ENV, check=True
            )
            acked = time.time()
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                mine = [r for r in asyncio.run(_study_runs()) if r.parameters.get("study", "").endswith(token)]
                if mine and mine[0].state_type and mine[0].state_type.value in ("COMPLETED", "FAILED", "CRASHED"):
                    run = mine[0]
                    break
                time.sleep(0.5)
            else:
                raise RuntimeError("no ingest-study run finished")
            rows.append(
                {
                    "created_s": run.created.timestamp() - acked,
                    "started_s": run.start_time.timestamp() - acked,
                    "state": run.state_type.value,
                }
            )
            print(f"  study {i + 1}: run created {rows[-1]['created_s']:.1f} s, started {rows[-1]['started_s']:.1f} s "
                  f"after the last instance was acknowledged ({rows[-1]['state']})", flush=True)  # fmt: skip
    finally:
        serve.send_signal(signal.SIGINT)
        try:
            serve.wait(timeout=60)
        except subprocess.TimeoutExpired:
            serve.kill()
        prefect.terminate()
        prefect.wait(timeout=60)
    return {"quiet_seconds": quiet_s, "studies": rows}


def compile_shim(work: Path) -> Path | None:
    source, library = work / "fsync_close.c", work / "fsync_close.so"
    source.write_text(SHIM)
    result = subprocess.run(
        ["gcc", "-O2", "-shared", "-fPIC", "-o", str(library), str(source), "-ldl"], capture_output=True
    )
    return library if result.returncode == 0 else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ct", type=int, default=1000)
    parser.add_argument("--us", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--parallel", type=int, default=0, help="also N storescu at once (storescp --fork)")
    parser.add_argument(
        "--nagle", type=int, default=0, help="also N CT slices with TCP_NODELAY unset (dcmtk as Debian ships it)"
    )
    parser.add_argument("--latency-studies", type=int, default=3)
    parser.add_argument("--quiet-seconds", type=float, default=5.0)
    parser.add_argument("--out", type=Path, default=RESULTS / "listen.json")
    parser.add_argument("--run-listener", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.run_listener:
        run_listener(args.run_listener, args.port)
        return

    with tempfile.TemporaryDirectory(prefix="medflow-bench-listen-", dir="/tmp") as tmp:
        work = Path(tmp)
        shim = compile_shim(work)
        corpora = build_corpus(work / "corpus", args.ct, args.us)
        load_before = os.getloadavg()
        print(f"load average {load_before[0]:.2f}; fsync shim {'built' if shim else 'not built (no gcc)'}", flush=True)
        results = {"throughput": throughput(corpora, work, args.repeat, shim, 1)}
        if args.parallel > 1:
            results["throughput"] |= throughput(corpora, work, args.repeat, shim, args.parallel)
        if args.nagle:
            slow = build_corpus(work / "nagle", args.nagle, 0)  # ~90 ms per instance for storescp: keep it small
            results["throughput"] |= throughput(slow, work, 1, shim, 1, nagle=True)
        if args.latency_studies:
            results["latency"] = latency(work, args.latency_studies, args.quiet_seconds)
        load_after = os.getloadavg()

    results["machine"] = {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_before": load_before,
        "load_after": load_after,
    }
    print("\ninstances/s (median), receiver as named, storescu sending, one association:")
    for name, r in results["throughput"].items():
        m = r["median_per_s"]
        line = f"  {name} ({r['instances']}): medflow {m['medflow']:.1f}, storescp {m['storescp']:.1f}"
        line += f" -> {m['medflow'] / m['storescp']:.2f}x"
        if "storescp+fsync" in m:
            line += f"; storescp+fsync {m['storescp+fsync']:.1f} -> {m['medflow'] / m['storescp+fsync']:.2f}x"
        paired = ", ".join(f"{k} {v:.2f}x" for k, v in r["paired_ratio"].items())
        print(line + f"; per-round ratio (median) {paired}; lost {r['lost']}")
    if "latency" in results:
        rows = results["latency"]["studies"]
        print(f"latency, last instance acknowledged -> ingest run started (quiet {args.quiet_seconds:.0f} s): "
              + ", ".join(f"{r['started_s']:.1f} s" for r in rows))  # fmt: skip
    print(f"load average before/after: {load_before[0]:.2f} / {load_after[0]:.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
