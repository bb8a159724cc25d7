"""Cost of the per-file time limit: ``tasks.workers.WorkerPool`` against ``concurrent.futures``.

The same batches of items (each a small CPU job: SHA-256 over 64 KiB, a few hundred microseconds, about a
hundredth of an ingested CT slice) run through

* ``supervised``: ``WorkerPool.run_items`` (forkserver workers; each item reports its start and its record over
  the worker's pipe, the calling thread watches the limit), as ingest and ``medflow deid`` run them;
* ``executor``: ``ProcessPoolExecutor(mp_context=forkserver).submit`` of one call per batch that returns the
  records at the end (what ingest did before the limit existed; nothing can stop one item there).

Both pools are started and warm before timing; runs alternate (``--repeat``) and medians are printed, with the
overhead per item. Usage::

    python bench/workers.py [--items 20000] [--batch 200] [--workers 2] [--repeat 5]
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

from tasks.workers import WorkerPool

BLOCK = os.urandom(64 * 1024)


def _job(seed: int) -> str:
    return hashlib.sha256(BLOCK + seed.to_bytes(8, "little")).hexdigest()[:8]


def supervised_items(items: list[int], *, progress) -> None:
    for index, seed in enumerate(items):
        progress.start(index)
        progress.done(index, _job(seed))


def plain_batch(items: list[int]) -> list[str]:
    return [_job(seed) for seed in items]


def _batches(items: int, size: int) -> list[list[int]]:
    return [list(range(i, min(i + size, items))) for i in range(0, items, size)]


def run_supervised(pool: WorkerPool, batches: list[list[int]], workers: int) -> float:
    started = time.perf_counter()
    with ThreadPoolExecutor(workers) as drivers:
        for run in drivers.map(lambda b: pool.run_items(supervised_items, b), batches):
            assert len(run.records) > 0
    return time.perf_counter() - started


def run_executor(pool: ProcessPoolExecutor, batches: list[list[int]]) -> float:
    started = time.perf_counter()
    for result in [pool.submit(plain_batch, b) for b in batches]:
        assert len(result.result()) > 0
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=20000)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    batches = _batches(args.items, args.batch)
    context = multiprocessing.get_context("forkserver")
    times: dict[str, list[float]] = {"supervised": [], "executor": []}
    with (
        WorkerPool(args.workers, preload=["tasks.workers"], item_timeout_s=600) as supervised,
        ProcessPoolExecutor(args.workers, mp_context=context) as executor,
    ):
        run_supervised(supervised, batches[:4], args.workers)  # warm: workers started, modules imported
        run_executor(executor, batches[:4])
        for _ in range(args.repeat):
            times["supervised"].append(run_supervised(supervised, batches, args.workers))
            times["executor"].append(run_executor(executor, batches))
    sup, ex = statistics.median(times["supervised"]), statistics.median(times["executor"])
    load = os.getloadavg()[0]
    print(f"{args.items} items, batches of {args.batch}, {args.workers} workers, load {load:.1f}, {args.repeat} runs")
    print(f"  supervised (WorkerPool, per-item limit): {sup:.3f} s  {1e6 * sup / args.items:.1f} us/item")
    print(f"  executor (ProcessPoolExecutor, no limit): {ex:.3f} s  {1e6 * ex / args.items:.1f} us/item")
    print(f"  overhead: {1e6 * (sup - ex) / args.items:+.1f} us/item ({100 * (sup - ex) / ex:+.1f}%)")


if __name__ == "__main__":
    main()
