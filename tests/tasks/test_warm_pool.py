"""A process's runs get the previous run's worker processes back, warm, unless that run went wrong."""

from __future__ import annotations

import os
import time

import pytest

from tasks.workers import close_idle_pools, warm_pool


def _pids(pool) -> set[int]:
    deadline = time.monotonic() + 60
    while not pool.whole() and time.monotonic() < deadline:  # workers start in the background: wait for all
        time.sleep(0.05)
    return {pool.call(os.getpid) for _ in range(pool.workers)}  # idle workers are taken in turn


def test_the_next_run_reuses_the_idle_workers_and_a_failed_run_does_not_return_them() -> None:
    close_idle_pools()
    with warm_pool(2, item_timeout_s=5) as pool:
        first = _pids(pool)
    assert len(first) == 2
    with warm_pool(2, item_timeout_s=None) as again:
        assert again is pool and _pids(again) == first and again.item_timeout_s is None
    with warm_pool(1) as other:  # another shape: its own workers
        assert not _pids(other) & first
    with pytest.raises(RuntimeError), warm_pool(2) as failing:
        assert failing is pool
        raise RuntimeError("the run went wrong")
    with warm_pool(2) as fresh:
        assert fresh is not pool and not _pids(fresh) & first
    close_idle_pools()
    assert not fresh.whole()
