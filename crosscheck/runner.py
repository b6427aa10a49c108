"""Run a case in one implementation: ``numpy`` (the reference), ``torch`` or ``jax``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from crosscheck import cases, environment, frameworks
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
    problem = c.problem(**overrides)
    if c.document is not None:
        return frameworks.train(framework, problem, dtype, progress)
    import warnings

    try:   # a user's forward or loss that does not run in a framework is the model's problem
        with warnings.catch_warnings(record=True) as caught:   # shown only if the run succeeds
            warnings.simplefilter("always")
            traj = frameworks.train(framework, problem, dtype, progress)
    except (frameworks.FrameworkUnavailable, environment.BadEnvironmentVariable):
        raise
    except Exception as e:
        from crosscheck.model import ModelError

        raise ModelError(f"[{case}] forward or loss failed in {framework}: {type(e).__name__}: "
                         f"{' '.join(str(e).split())[:300]} (write them against xp, the array namespace "
                         "they are given, not np)") from e
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return traj
