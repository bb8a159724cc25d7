"""Promotion plots: the bootstrap distribution of each primary metric's paired difference against the margin, and
the per-subgroup differences with their intervals against the tolerance.

``promotion_files`` returns file name -> bytes: the two PNGs and ``decision.html``, one self-contained page (the
images inlined as data URIs, the reasons and the table), for MLflow, whose UI shows both kinds. Everything drawn is
a metric name, a number, a model version or a subgroup label (sex, age band, group): no identifier.
"""

from __future__ import annotations

import base64
import html

import numpy as np
from matplotlib.figure import Figure

from tasks.evaluate.plots import png
from tasks.registry.compare import Decision, PromotionPolicy

BOOTSTRAP, SUBGROUPS, PAGE = "bootstrap.png", "subgroups.png", "decision.html"


def bootstrap_plot(decision: Decision, policy: PromotionPolicy) -> bytes | None:
    """One panel per primary metric: histogram of the resampled differences, the interval, 0 and -margin."""
    overall = {d.metric: d for d in decision.differences if d.group == "all"}
    metrics = [m for m in decision.distributions if m in overall]
    if not metrics:
        return None
    fig = Figure(figsize=(4.2 * len(metrics), 3.2), layout="constrained")
    for ax, name in zip(np.atleast_1d(fig.subplots(1, len(metrics))), metrics, strict=True):
        values = decision.distributions[name]
        values = values[np.isfinite(values)]
        d = overall[name]
        if values.size:
            spread = float(np.ptp(values))
            ax.hist(values, bins=30 if spread > 0 else 1, range=None if spread > 0 else (d.improvement - 1e-3,
                    d.improvement + 1e-3), color="#4c72b0", alpha=0.8)  # fmt: skip
        if np.isfinite(d.low) and np.isfinite(d.high):
            ax.axvspan(d.low, d.high, color="#4c72b0", alpha=0.12, label=f"{policy.level:.0%} interval")
        ax.axvline(d.improvement, color="black", lw=1.5, label=f"observed {d.improvement:+.4f}")
        ax.axvline(-policy.margin, color="#c44e52", ls="--", lw=1.2, label=f"margin -{policy.margin}")
        ax.axvline(0.0, color="grey", lw=0.8)
        ax.set(xlabel=f"{name}: challenger - champion (> 0 better)", ylabel="resamples",
               title=f"{name} ({d.patients} patients)")  # fmt: skip
        ax.legend(fontsize=7)
    return png(fig)


def subgroup_plot(decision: Decision, policy: PromotionPolicy) -> bytes | None:
    """Difference of the first primary metric overall and per subgroup, with intervals; small subgroups in grey."""
    first = next((d.metric for d in decision.differences if d.group == "all"), None)
    rows = [d for d in decision.differences if d.metric == first and np.isfinite(d.improvement)]
    if not rows:
        return None
    fig = Figure(figsize=(5.8, 0.4 * len(rows) + 1.4), layout="constrained")
    ax = fig.subplots()
    for y, d in zip(np.arange(len(rows))[::-1], rows, strict=True):
        judged = d.group == "all" or d.patients >= policy.min_subgroup_patients
        low, high = (d.low, d.high) if np.isfinite(d.low) and np.isfinite(d.high) else (d.improvement,) * 2
        ax.errorbar(d.improvement, y, xerr=[[d.improvement - low], [high - d.improvement]], fmt="o", capsize=3,
                    color="#4c72b0" if judged else "#999999")  # fmt: skip
    ax.set_yticks(np.arange(len(rows))[::-1], [f"{d.group} (n={d.patients})" for d in rows])
    ax.axvline(0.0, color="grey", lw=0.8)
    ax.axvline(-policy.subgroup_tolerance, color="#c44e52", ls="--", lw=1.2,
               label=f"subgroup tolerance -{policy.subgroup_tolerance}")  # fmt: skip
    ax.set(xlabel=f"{first}: challenger - champion (> 0 better)",
           title=f"By subgroup (grey: under {policy.min_subgroup_patients} patients, not judged)")  # fmt: skip
    ax.legend(fontsize=7)
    return png(fig)


def decision_page(title: str, decision: Decision, images: dict[str, bytes]) -> str:
    """A self-contained HTML page: title, reasons, the plots inlined, the table of differences."""
    reasons = "".join(f"<li>{html.escape(r)}</li>" for r in decision.reasons) or "<li>all criteria met</li>"
    figures = "".join(f'<p><img alt="{html.escape(name)}" src="data:image/png;base64,'
                      f'{base64.b64encode(data).decode()}"></p>' for name, data in images.items())  # fmt: skip
    table = decision.table()
    head = "".join(f"<th>{html.escape(k)}</th>" for k in (table[0] if table else {}))
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row.values()) + "</tr>" for row in table)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head><body>"
            f"<h1>{html.escape(title)}</h1><ul>{reasons}</ul>{figures}<table border='1'><tr>{head}</tr>{body}</table>"
            "</body></html>")  # fmt: skip


def promotion_files(title: str, decision: Decision, policy: PromotionPolicy) -> dict[str, bytes]:
    """File name -> bytes of the plots and the page (empty when nothing was compared)."""
    images = {name: data for name, data in ((BOOTSTRAP, bootstrap_plot(decision, policy)),
                                            (SUBGROUPS, subgroup_plot(decision, policy))) if data}  # fmt: skip
    if not images:
        return {}
    return {**images, PAGE: decision_page(title, decision, images).encode()}
