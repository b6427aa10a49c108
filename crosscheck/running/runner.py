"""Run a case in one implementation: ``numpy`` (the reference), ``torch`` or ``jax``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from crosscheck import frameworks
from crosscheck.declaring import cases
from crosscheck.running import environment
from crosscheck.running.record import Trajectory

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
        from crosscheck.declaring.model import ModelError, where_in

        raise ModelError(f"{where_in(e, c.origin)}[{case}] forward or loss failed in {framework}: "
                         f"{type(e).__name__}: {_sentences(str(e))} ({_hint(e)})") from e
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return traj


#: JAX's errors for a Python ``if``, ``bool()``, ``int()`` or ``float()`` on a traced value.
_TRACED = ("ConcretizationTypeError", "TracerBoolConversionError", "TracerIntegerConversionError")


def _hint(e: Exception) -> str:
    """What to change, for what a framework raised in a user's forward or loss."""
    if type(e).__name__ in _TRACED:
        return ("JAX traces the forward and loss: a Python if, while, bool(), int() or float() on a "
                "value computed from the parameters or data cannot be traced; branch with xp.where")
    return "write them against xp, the array namespace they are given, not np"


def _sentences(text: str, limit: int = 300) -> str:
    """A framework's message on one line, whole sentences up to ``limit`` characters, without
    the sentences that point into this tool's own code or only at a web page."""
    kept, length = [], 0
    for sentence in " ".join(text.split()).split(". "):
        if "frameworks/" in sentence or "crosscheck/" in sentence or sentence.startswith("See http"):
            continue
        if kept and length + len(sentence) > limit:
            break
        kept.append(sentence)
        length += len(sentence) + 2
    return ". ".join(kept)

