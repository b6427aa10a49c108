"""What a model's forward taps at one step of a run: its intermediates in NumPy, the ReLU
pre-activations exactly 0 there, and the units each declared ReLU has off. Read by the local
question (its sensitivity), the likely-mistake readings and the probes of a wrong step."""

from __future__ import annotations

from typing import Any

import numpy as np

from crosscheck.declaring.cases import Case
from crosscheck.judging.metrics import rerun_overrides, sample_of
from crosscheck.running.record import Trajectory


def tapped(case: Case, t: Trajectory, k: int) -> dict[str, np.ndarray]:
    """The forward's tapped intermediates at ``t``'s parameters of step ``k``, in NumPy."""
    return forward_at(case, t, k)[0]


def forward_at(case: Case, t: Trajectory, k: int) -> tuple[dict[str, np.ndarray], Any]:
    """The forward at ``t``'s parameters of step ``k`` on that step's batch, in NumPy: its
    tapped intermediates, and what it returns."""
    from array_api_compat import array_namespace

    from crosscheck.declaring.problem import recording

    problem = case.problem(**rerun_overrides(t, case))
    sample = sample_of(t, k)
    kw: dict = {}
    if problem.loop is not None:
        x = problem.loop.batch(problem.x, k)
        kw = problem.loop.kwargs(k, sample.state or problem.loop.state0, np.asarray)
    else:
        x = problem.x if sample is None else problem.sample(problem.x, sample)
    named: dict = {}
    with np.errstate(all="ignore"):
        out = problem.forward(array_namespace(x), {n: t.params[n][k] for n in t.param_names}, x,
                              tap=recording(named), **kw)
    if isinstance(out, tuple):   # (prediction, new carried state)
        out = out[0]
    return {n: np.asarray(v) for n, v in named.items()}, out


def units_off(case: Case, t: Trajectory, k: int, named: dict | None = None) -> dict[str, np.ndarray]:
    """Per declared ReLU pre-activation, per unit along its last axis, whether it is below 0
    on some sample at step ``k``: the units a missing ReLU mask leaves wrong. (A unit exactly
    at 0 is on a kink, not off: a convention's difference there is the kink probe's to name.
    An undeclared tap may be no ReLU's: a tanh's with an extra mask would read as a missing
    one. A mask missing there is found by the probe that lets the ReLU pass every unit.)
    ``named``: the step's taps, where :func:`tapped` was already asked for them."""
    masks = case.problem(**rerun_overrides(t, case)).masks
    if not masks:
        return {}
    named = tapped(case, t, k) if named is None else named
    out = {}
    for n in (n for n in masks if n in named):
        z = np.asarray(named[n])
        if z.ndim >= 1 and np.issubdtype(z.dtype, np.number):
            out[n] = (z < 0).reshape(-1, z.shape[-1]).any(axis=0)
    return out


def exact_zeros(case: Case, t: Trajectory, k: int, named: dict | None = None) -> tuple[str, ...]:
    """The recorded ReLU pre-activations that are exactly 0 somewhere at step ``k`` (``named``:
    the step's taps, where already at hand)."""
    masks = case.problem(**rerun_overrides(t, case)).masks
    if not masks:
        return ()
    named = tapped(case, t, k) if named is None else named
    return tuple(n for n in masks if n in named and np.any(named[n] == 0))
