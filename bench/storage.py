"""Random 32-frame clip reads: medflow's Zarr layout vs FFV1/MKV, MJPEG/AVI (EchoNet), H.264/MP4, source DICOM.

Input: pydicom-data's ``color3d_jpeg_baseline.dcm`` (120 frames, 480×640 RGB). Two sizes in one run:
native RGB, and the 112×112 grayscale training view (what EchoNet-Dynamic stores as AVI). Every format is
read the same way: open, seek to the clip's first frame (nearest keyframe for H.264), decode 32 frames into
a numpy array. Zarr uses the store's own writer (``tasks.store.zarr_store.write_node``, the codec and
chunking the ingest uses). Needs PyAV (``pip install -e '.[bench]'``). Usage::

    python bench/storage.py [--clips 40] [--seed 0] [--default-allocator]

Every format is read in the same process, which keeps freed buffers mapped as the training loader's workers do
(``tasks.store.allocator``; ``--default-allocator`` leaves glibc as it is). Prints a table and writes
``bench/results/storage.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results"
CLIP = 32
FPS = 30


def dir_bytes(path: Path) -> int:
    return (
        sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())
        if Path(path).is_dir()
        else path.stat().st_size
    )


# ---- writers ------------------------------------------------------------------------------------------
def write_video(path: Path, frames: np.ndarray, codec: str, pix_fmt: str, options: dict | None = None) -> None:
    import av

    gray = frames.ndim == 3
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=FPS)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = pix_fmt
        stream.options = options or {}
        for frame in frames:
            vf = av.VideoFrame.from_ndarray(frame, format="gray" if gray else "rgb24")
            for packet in stream.encode(vf):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def read_video(path: Path, start: int, gray: bool) -> np.ndarray:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        time_base = stream.time_base
        target = round(start / FPS / time_base)
        container.seek(target, stream=stream, backward=True, any_frame=False)
        out = []
        for frame in container.decode(stream):
            if frame.pts is None or frame.pts < target:
                continue
            out.append(frame.to_ndarray(format="gray" if gray else "rgb24"))
            if len(out) == CLIP:
                break
    return np.stack(out)


def write_zarr(root: Path, frames: np.ndarray) -> tuple[Path, Callable[[int], np.ndarray]]:
    import zarr

    from tasks.store.zarr_store import ArraySpec, store_path, video_chunks, write_node

    write_node(root, "clip", {"0": ArraySpec(frames, video_chunks(frames.shape))}, {})
    array = zarr.open_array(store_path(root) / "clip" / "0", mode="r")
    return store_path(root) / "clip" / "0", lambda s: array[s : s + CLIP]


def zarr_name() -> str:
    from tasks.store.zarr_store import VIDEO_CHUNK_FRAMES, ZSTD_LEVEL

    return f"medflow zarr (zstd {ZSTD_LEVEL}, {VIDEO_CHUNK_FRAMES}-frame chunks, 1 shard)"


def dicom_reader(path: Path) -> Callable[[int], np.ndarray]:
    from pydicom.pixels import iter_pixels

    return lambda s: np.stack(list(iter_pixels(path, indices=range(s, s + CLIP))))


# ---- benchmark ----------------------------------------------------------------------------------------
def time_reads(read: Callable[[int], np.ndarray], starts: list[int]) -> dict:
    read(starts[0])  # warm (imports, page cache)
    times = []
    for s in starts:
        t = time.perf_counter()
        clip = read(s)
        times.append((time.perf_counter() - t) * 1000)
        assert clip.shape[0] == CLIP
    return {"median_ms": statistics.median(times), "p90_ms": float(np.percentile(times, 90)), "clips": len(times)}


def exact(read: Callable[[int], np.ndarray], frames: np.ndarray, start: int) -> tuple[bool, float]:
    clip = read(start).astype(np.float64)
    ref = frames[start : start + CLIP].astype(np.float64)
    mse = float(np.mean((clip - ref) ** 2))
    return bool(mse == 0.0), float("inf") if mse == 0 else float(10 * np.log10(255**2 / mse))


def run(clips: int, seed: int) -> dict:
    import pydicom
    from pydicom.data import get_testdata_file

    from tasks.normalize.view import make_view

    source = Path(get_testdata_file("color3d_jpeg_baseline.dcm"))
    native = pydicom.dcmread(source).pixel_array
    view = make_view(native, np.arange(native.shape[0]), 112)
    rng = np.random.default_rng(seed)
    starts = [int(s) for s in rng.integers(0, native.shape[0] - CLIP, clips)]
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for size, frames in (("native", native), ("112", view)):
            gray = frames.ndim == 3
            formats: dict[str, tuple[Path, Callable[[int], np.ndarray]]] = {}
            zpath, zread = write_zarr(tmp / f"zarr-{size}", frames)
            formats[zarr_name()] = (zpath, zread)
            specs = {
                "FFV1 / MKV (lossless)": ("ffv1.mkv", "ffv1", "gray" if gray else "bgr0", {"g": "1", "level": "3"}),
                "MJPEG / AVI (EchoNet)": ("mjpeg.avi", "mjpeg", "yuvj420p", {"q:v": "3"}),
                "H.264 / MP4 (crf 18)": ("h264.mp4", "libx264", "yuv420p", {"crf": "18", "preset": "medium"}),
            }
            for name, (fname, codec, pix_fmt, opts) in specs.items():
                path = tmp / f"{size}-{fname}"
                write_video(path, frames, codec, pix_fmt, opts)
                formats[name] = (path, lambda s, p=path, g=gray: read_video(p, s, g))
            if size == "native":
                formats["source DICOM (JPEG baseline, pydicom)"] = (source, dicom_reader(source))
            for name, (path, read) in formats.items():
                timing = time_reads(read, starts)
                lossless, psnr = exact(read, frames, starts[0])
                if name.startswith("source"):
                    lossless, psnr = True, float("inf")  # the source is the reference
                results[f"{size} | {name}"] = {
                    **timing,
                    "bytes": dir_bytes(path),
                    "lossless": lossless,
                    "psnr_db": psnr,
                }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--default-allocator",
        action="store_true",
        help="leave glibc's mmap threshold alone (the training loader's workers raise it, tasks.store.allocator)",
    )
    args = parser.parse_args()
    if not args.default_allocator:
        from tasks.store.allocator import keep_freed_memory

        keep_freed_memory()  # as models.datamodule.worker_init does; the same process reads every format
    results = run(args.clips, args.seed)
    print(f"{'size | format':62s} {'median ms':>10s} {'p90 ms':>8s} {'MB':>8s}  lossless  PSNR")
    for name, r in results.items():
        print(
            f"{name:62s} {r['median_ms']:10.1f} {r['p90_ms']:8.1f} {r['bytes'] / 1e6:8.2f}  "
            f"{'yes' if r['lossless'] else 'no ':8s}  {r['psnr_db']:.1f}"
        )
    ratios = {}
    for size in ("native", "112"):
        z = results[f"{size} | {zarr_name()}"]
        ffv1 = results[f"{size} | FFV1 / MKV (lossless)"]
        mjpeg = results[f"{size} | MJPEG / AVI (EchoNet)"]
        ratios[size] = {
            "speedup_vs_ffv1": ffv1["median_ms"] / z["median_ms"],
            "speedup_vs_mjpeg": mjpeg["median_ms"] / z["median_ms"],
            "bytes_vs_ffv1": z["bytes"] / ffv1["bytes"],
        }
        print(
            f"{size}: zarr is {ratios[size]['speedup_vs_ffv1']:.1f}x faster than FFV1 (target >= 5), "
            f"{ratios[size]['speedup_vs_mjpeg']:.1f}x faster than MJPEG (target >= 1.5), "
            f"{ratios[size]['bytes_vs_ffv1']:.2f}x FFV1's bytes (target <= 1.3)"
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = {
        "benchmark": "storage",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "clips": args.clips,
        "allocator": "glibc default" if args.default_allocator else "freed memory kept (tasks.store.allocator)",
        "results": results,
        "ratios": ratios,
    }
    (RESULTS / "storage.json").write_text(json.dumps(out, indent=2, default=str))


if __name__ == "__main__":
    main()
