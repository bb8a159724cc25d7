"""Evaluation of a training run: survival, uncertainty and subgroup metrics with patient-bootstrap intervals,
occlusion and saliency sanity checks, and a self-contained HTML report.

Entry point: :func:`tasks.evaluate.run.evaluate_run` (CLI ``medflow evaluate``, flow ``flows.evaluate.evaluate``).
"""
