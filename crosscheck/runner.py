"""Run a case in one implementation: ``numpy`` (the reference), ``torch`` or ``jax``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from crosscheck import cases, frameworks
from crosscheck.record import Trajectory

IMPLEMENTATIONS = ("numpy", *frameworks.FRAMEWORKS)


def run(case: str, framework: str = "numpy", dtype: str = "float64",
        progress: Callable[[int], None] | None = None, **overrides: Any) -> Trajectory:
    """One trajectory. The reference always computes in float64, as the documents do.

    ``progress(steps_done)``, if given, hears how far the run is (see ``frameworks.train``;
    the reference reports once, at the end).
    """
    c = cases.get(case)
    if framework == "numpy":
        with np.errstate(all="ignore"):  # a diverging run is data, not a warning
            traj = c.run_reference(**overrides)
        traj.check_dtype()
        if progress is not None:
            progress(traj.steps)
        return traj
    return frameworks.train(framework, c.problem(**overrides), dtype, progress)
