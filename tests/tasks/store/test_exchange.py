"""Replacing a node swaps two directories in one step."""

from __future__ import annotations

from tasks.store.exchange import exchange


def test_exchange_swaps_two_directories(tmp_path) -> None:
    a, b = tmp_path / "new", tmp_path / "old"
    a.mkdir()
    b.mkdir()
    (a / "zarr.json").write_text("new")
    (b / "zarr.json").write_text("old")
    (b / "c").mkdir()
    exchange(a, b)
    assert (b / "zarr.json").read_text() == "new" and not (b / "c").exists()
    assert (a / "zarr.json").read_text() == "old" and (a / "c").is_dir()
