"""Evaluation benchmark: time to evaluate 10,000 survival predictions with 1,000 patient-level bootstrap
resamples (medflow's weight-matrix bootstrap vs a per-resample loop over scikit-survival + pycox, the
usual way), plus the reference figures the tests check in short form: FLCHAIN over 5 stratified splits
(classical Cox and the project's DeepSurv, C_td and IBS) and the evidential digits experiment; and the model
checks' time per clip and peak resident memory (occlusion, integrated-gradient randomisation test, OOD) of
r2plus1d_18 on 16×112×112 clips, measured in a child process of its own (``--model-checks``).

Usage::

    python bench/evaluate.py [--n 10000] [--resamples 1000] [--loop-resamples 5] [--skip-reference]
    python bench/evaluate.py --model-checks-only [--check-clips 8] [--check-backbone r2plus1d_18]

Prints figures side by side and writes ``bench/results/evaluate.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def synthetic_predictions(n: int, seed: int = 0) -> pd.DataFrame:
    """n predictions from n/2 patients (two instances each), 20 survival columns, sex/age/group columns."""
    rng = np.random.default_rng(seed)
    patients = max(1, n // 2)
    pid = np.repeat(np.arange(patients), 2)[:n]
    x = rng.normal(size=patients)
    risk = x[pid] + rng.normal(scale=0.3, size=n)
    event_time = rng.exponential(365 * np.exp(-x))[pid]
    censor_time = rng.uniform(0, 1500, patients)[pid]
    time_ = np.ceil(np.minimum(event_time, censor_time))
    event = event_time <= censor_time
    event[time_ == time_.max()] = True
    grid = np.linspace(30, 1200, 20).round()
    sex = np.array(["F", "M"])[rng.integers(0, 2, patients)]
    group = np.array(["a", "b", "c"])[rng.integers(0, 3, patients)]
    frame = pd.DataFrame(
        {
            "patient_id": [f"p{i}" for i in pid],
            "instance_id": [f"i{i}" for i in range(n)],
            "time": time_,
            "event": event,
            "risk": risk,
            "sex": sex[pid],
            "age": rng.uniform(20, 95, patients)[pid],
            "group": group[pid],
        }
    )
    surv = np.exp(-np.outer(np.exp(risk), grid) / 365)
    for day, column in zip(grid, surv.T, strict=True):
        frame[f"surv_{int(day)}"] = column
    return frame


def time_medflow(frame: pd.DataFrame, resamples: int) -> dict:
    from tasks.evaluate.metrics import compute_metrics
    from tasks.evaluate.options import EvaluationOptions
    from tasks.evaluate.run import evaluate_run

    options = EvaluationOptions(n_resamples=resamples, model_checks=False)
    start = time.perf_counter()
    overall_only = compute_metrics(frame.drop(columns=["sex", "age", "group"]), options)
    t_overall = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        frame.to_parquet(Path(tmp) / "predictions.parquet", index=False)
        start = time.perf_counter()
        metrics = evaluate_run(Path(tmp), options)
        t_full = time.perf_counter() - start
    return {"overall_metrics_s": t_overall, "evaluate_run_s": t_full, "n_metrics": len(metrics),
            "harrell_c": metrics["harrell_c"], "harrell_c_ci": metrics["harrell_c_ci"],
            "check_overall_equal": overall_only.metrics["harrell_c"] == metrics["harrell_c"]}  # fmt: skip


def time_loop_peer(frame: pd.DataFrame, resamples: int, horizons: tuple[float, ...]) -> dict:
    """The same overall metrics per resample with scikit-survival and pycox on the expanded resample."""
    from pycox.evaluation.concordance import concordance_td
    from sksurv.metrics import concordance_index_censored, cumulative_dynamic_auc, integrated_brier_score
    from sksurv.util import Surv

    from tasks.evaluate.bootstrap import patient_weights
    from tasks.evaluate.metrics import survival_grid

    cols, grid = survival_grid(frame)
    t, d, r, S = (
        frame["time"].to_numpy(float),
        frame["event"].to_numpy(bool),
        frame["risk"].to_numpy(float),
        frame[cols].to_numpy(),
    )
    W = patient_weights(frame["patient_id"].to_numpy(), resamples, seed=0)
    inside = (grid >= t.min()) & (grid < t.max())
    start = time.perf_counter()
    for b in range(1, resamples + 1):
        rep = np.repeat(np.arange(len(t)), W[b].astype(int))
        y = Surv.from_arrays(d[rep], t[rep])
        concordance_index_censored(d[rep], t[rep], r[rep])
        idx = np.clip(np.searchsorted(grid, t[rep], side="right") - 1, 0, len(grid) - 1)
        concordance_td(t[rep], d[rep].astype(int), np.ascontiguousarray(S[rep].T), idx, "adj_antolini")
        integrated_brier_score(y, y, S[rep][:, inside], grid[inside])
        cumulative_dynamic_auc(y, y, r[rep], list(horizons))
    per = (time.perf_counter() - start) / resamples
    return {"per_resample_s": per, "extrapolated_s": per * 1000, "resamples_timed": resamples}


def flchain_figures(splits: int = 5) -> dict:
    import torch
    from pycox.evaluation import EvalSurv

    from tasks.evaluate import reference
    from tasks.evaluate.compat import scipy_simps
    from tasks.evaluate.metrics import compute_metrics, survival_grid
    from tasks.evaluate.options import EvaluationOptions

    torch.set_num_threads(1)
    features, labels = reference.load_flchain()
    out: dict[str, dict[str, list[float]]] = {"cox": {}, "deepsurv": {}}
    for seed in range(splits):
        s = reference.split(features, labels, seed)
        grid = reference.time_grid(s.test)
        for name, frame in (
            ("cox", reference.cox_predictions(s, grid)),
            ("deepsurv", reference.deepsurv_predictions(s, grid, seed)),
        ):
            m = compute_metrics(frame, EvaluationOptions(n_resamples=0, horizons=())).metrics
            cols, days = survival_grid(frame)
            ev = EvalSurv(pd.DataFrame(frame[cols].to_numpy().T, index=days), frame["time"].to_numpy(),
                          frame["event"].to_numpy().astype(int), censor_surv="km")  # fmt: skip
            with scipy_simps():
                pycox_ibs = ev.integrated_brier_score(grid)
            for key, value in (
                ("c_td", m["antolini_c_td"]),
                ("ibs", m["ibs"]),
                ("harrell_c", m["harrell_c"]),
                ("pycox_ibs", pycox_ibs),
            ):
                out[name].setdefault(key, []).append(float(value))
    return {
        name: {k: {"mean": float(np.mean(v)), "sd": float(np.std(v, ddof=1)), "values": v} for k, v in d.items()}
        for name, d in out.items()
    }


def digits_figures() -> dict:
    import torch

    from tasks.evaluate import reference

    torch.set_num_threads(1)
    f = reference.digits_experiment(seed=0)
    rot = f.rotation.set_index("angle")
    flip = f.flip_angle if f.flip_angle is not None else 0
    return {"accuracy": f.accuracy, "softmax_accuracy": f.softmax_accuracy, "min_class_recall": min(f.recall_per_class),
            "flip_angle": f.flip_angle, "u_at_0": float(rot.loc[0, "uncertainty"]),
            "u_at_flip": float(rot.loc[flip, "uncertainty"]),
            "softmax_conf_at_flip": float(rot.loc[flip, "softmax_confidence"]),
            "entropy_in_0_4": f.entropy_in, "entropy_out_5_9": f.entropy_out, "auroc_ood": f.auroc_ood,
            "rotation": f.rotation.round(4).to_dict(orient="list")}  # fmt: skip


def model_check_child(backbone: str, clips: int, batch_size: int | None) -> dict:
    """Model checks of a randomly initialised ``backbone`` + classification head on ``clips`` random uint8
    16×112×112 clips on the CPU: seconds, seconds per clip, peak RSS (this process, ``getrusage``)."""
    import resource

    import torch

    from models.heads import FusionHead
    from models.networks import build_backbone
    from tasks.evaluate.model_checks import ModelAdapter, check_model
    from tasks.evaluate.options import EvaluationOptions

    torch.manual_seed(0)
    net = build_backbone(backbone)
    model = torch.nn.Sequential(net, FusionHead(net.out_features, 2)).eval()
    data = torch.randint(0, 256, (clips, 16, 112, 112), dtype=torch.uint8)
    prepare = lambda c: (c.float().div(255.0).unsqueeze(1) - 0.15) / 0.2  # noqa: E731
    adapter = ModelAdapter(model, prepare, lambda out: out.softmax(1)[:, 1], lambda out: 1 - out.softmax(1).amax(1))
    extra = {} if batch_size is None else {"batch_size": batch_size}
    options = EvaluationOptions(clips=clips, **extra)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    start, cpu_start = time.perf_counter(), time.process_time()
    result = check_model(adapter, data, options)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start
    return {"backbone": backbone, "clips": clips, "checked_clips": result.metrics["model_check_clips"],
            "saliency_clips": options.saliency_clips, "batch_size": getattr(options, "batch_size", None),
            "seconds": round(seconds, 1), "seconds_per_clip": round(seconds / clips, 2),
            "cpu_seconds_per_clip": round(cpu_seconds / clips, 2), "loadavg": os.getloadavg()[0],
            "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
            "rss_before_checks_gb": round(rss_before, 2), "threads": torch.get_num_threads()}  # fmt: skip


def time_model_checks(backbone: str, clips: int, pythonpath: str | None = None) -> dict:
    """``model_check_child`` in a fresh interpreter (its own peak RSS); ``pythonpath`` picks the code measured."""
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": pythonpath or str(ROOT)}
    command = [sys.executable, __file__, "--model-checks-child", "--check-backbone", backbone]
    command += ["--check-clips", str(clips)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--loop-resamples", type=int, default=5, help="resamples timed for the loop peer")
    parser.add_argument("--skip-reference", action="store_true", help="timing only (no FLCHAIN, no digits)")
    parser.add_argument("--output", help="JSON path (default bench/results/evaluate.json)")
    parser.add_argument("--model-checks-only", action="store_true", help="only the model-check time and memory")
    parser.add_argument("--skip-model-checks", action="store_true")
    parser.add_argument("--check-backbone", default="r2plus1d_18")
    parser.add_argument("--check-clips", type=int, default=8)
    parser.add_argument("--check-peer-path", help="PYTHONPATH of another checkout, measured side by side")
    parser.add_argument("--model-checks-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.model_checks_child:
        print(json.dumps(model_check_child(args.check_backbone, args.check_clips, None)))
        return
    if args.model_checks_only:
        result = {"machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "loadavg": os.getloadavg()}}
        result["model_checks"] = _report_model_checks(args)
        out = Path(args.output) if args.output else RESULTS / "evaluate-model-checks.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2))
        return
    frame = synthetic_predictions(args.n)
    load_before = os.getloadavg()
    medflow = time_medflow(frame, args.resamples)
    peer = time_loop_peer(frame, args.loop_resamples, (90.0, 365.0, 730.0)) if args.loop_resamples else None
    machine = {"platform": platform.platform(), "cpus": os.cpu_count(), "loadavg": [load_before, os.getloadavg()]}
    result = {
        "machine": machine,
        "n_predictions": args.n,
        "resamples": args.resamples,
        "medflow": medflow,
        "loop_peer": peer,
    }
    print(f"{args.n} predictions, {args.resamples} patient bootstrap resamples (load avg {load_before[0]:.1f})")
    print(f"  medflow overall metrics + CIs       {medflow['overall_metrics_s']:8.1f} s")
    print(f"  medflow evaluate_run (+9 subgroups, report) {medflow['evaluate_run_s']:8.1f} s")
    if peer:
        timed = peer["resamples_timed"]
        print(f"  loop sksurv+pycox, overall only     {peer['extrapolated_s']:8.1f} s (extrapolated from {timed})")
    if not args.skip_reference:
        result["flchain"] = flchain_figures()
        result["digits"] = digits_figures()
        for name, d in result["flchain"].items():
            c_td, ibs, pycox_ibs = d["c_td"], d["ibs"]["mean"], d["pycox_ibs"]["mean"]
            print(
                f"  FLCHAIN {name:9s} C_td {c_td['mean']:.3f} ± {c_td['sd']:.3f} IBS {ibs:.4f} (pycox {pycox_ibs:.4f})"
            )
        print("  published band (5 splits): C_td 0.784 ± 0.013, IBS 0.102")
        g = result["digits"]
        print(f"  digits: acc {g['accuracy']:.3f}, flip {g['flip_angle']}°, u {g['u_at_0']:.2f}→{g['u_at_flip']:.2f}, "
              f"softmax conf at flip {g['softmax_conf_at_flip']:.2f}, entropy 0–4 {g['entropy_in_0_4']:.2f} vs 5–9 "
              f"{g['entropy_out_5_9']:.2f}, OOD AUROC {g['auroc_ood']:.3f}")  # fmt: skip
    if not args.skip_model_checks:
        result["model_checks"] = _report_model_checks(args)
    out = Path(args.output) if args.output else RESULTS / "evaluate.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))


def _report_model_checks(args: argparse.Namespace) -> dict:
    figures = {"medflow": time_model_checks(args.check_backbone, args.check_clips)}
    if args.check_peer_path:
        figures["peer"] = {**time_model_checks(args.check_backbone, args.check_clips, args.check_peer_path),
                           "code": args.check_peer_path}  # fmt: skip
    for name, f in figures.items():
        print(f"  model checks ({name}) {f['backbone']} on {f['clips']} clips, CPU ({f['threads']} threads): "
              f"{f['seconds_per_clip']:.2f} s per clip ({f['cpu_seconds_per_clip']:.2f} CPU s), {f['seconds']:.0f} s, "
              f"peak RSS {f['peak_rss_gb']:.2f} GB "
              f"(model loaded: {f['rss_before_checks_gb']:.2f} GB)")  # fmt: skip
    return figures


if __name__ == "__main__":
    main()
