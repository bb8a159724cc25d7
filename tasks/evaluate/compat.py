"""pycox on current SciPy: ``scipy.integrate.simps`` was removed in SciPy 1.14.

pycox 0.3.0's ``EvalSurv.integrated_brier_score`` calls ``scipy.integrate.simps(scores, time_grid)`` and
fails with ``AttributeError``. medflow does not depend on it: its own IBS
(:func:`tasks.evaluate.survival.integrated_brier`, trapezoid rule, checked against scikit-survival) is
what reports use. This shim exists only so the
benchmark and tests can run pycox's version as a peer; it is scoped to a ``with`` block and never
installed globally.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import scipy.integrate


def _simps(y: np.ndarray, x: np.ndarray | None = None, dx: float = 1.0, axis: int = -1, even: object = None) -> float:
    """The old positional ``simps(y, x)`` signature on top of ``simpson`` (whose ``x`` is keyword-only)."""
    return scipy.integrate.simpson(y, x=x, dx=dx, axis=axis)


@contextmanager
def scipy_simps() -> Iterator[None]:
    """Provide ``scipy.integrate.simps`` inside the block when SciPy lacks it; restore the module after."""
    if hasattr(scipy.integrate, "simps"):
        yield
        return
    scipy.integrate.simps = _simps  # type: ignore[attr-defined]
    try:
        yield
    finally:
        del scipy.integrate.simps
