"""The update question: is the hand-written optimizer right at step k?

A model that declares ``update=`` (its own optimizer) has it judged as its backward is: at
every step, at the framework's own parameters and gradients. The hand-written update is run
along the framework's run, its state carried from its own previous calls (which saw the same
gradients the framework's optimizer saw), and its new parameters are compared with the
parameters the framework's optimizer (``torch.optim`` or optax, as declared) made from the same
ones. Nothing of the reference's run is involved, so the answer is well-conditioned however
chaotic the run; the tolerance is :func:`crosscheck.tolerances.update_rtol`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from crosscheck import tolerances
from crosscheck.declaring.cases import Case
from crosscheck.running.record import Trajectory

#: How close the manual step's ratio to the optimizer's must be on every element to be called
#: one factor: eps (1e-8 beside a root of a moment) moves the ratio by about 1e-5 relative.
SAME_FACTOR = 1e-3


@dataclasses.dataclass(frozen=True)
class Updates:
    """What the update check found for one framework's run."""

    steps: int                          # steps compared
    worst: dict[str, float]             # parameter -> worst normwise error
    first: Any = None                   # compare.Divergence of the first wrong update, or None
    first_steps: dict = dataclasses.field(default_factory=dict)   # ("update", param) -> first bad step


def likely(manual: np.ndarray, got: np.ndarray, before: np.ndarray, optimizer: Any, step: int) -> str:
    """The likely mistake of a wrong update, from the manual step against the optimizer's."""
    d_manual, d_fw = np.ravel(manual - before), np.ravel(got - before)
    moving = np.abs(d_fw) > 0
    name = optimizer.describe()
    if moving.any() and np.all(d_manual[moving] == 0):
        return (f"the manual update leaves the parameter where it was at step {step}, where {name} moves "
                "it: a momentum or moment used before the gradient is added to it?")
    if not moving.any():
        return f"{name} leaves the parameter where it was at step {step}; the manual update moves it"
    ratio = d_manual[moving] / d_fw[moving]
    if np.ptp(ratio) <= SAME_FACTOR * np.max(np.abs(ratio)):
        c = float(np.median(ratio))
        for what, factor in optimizer.factors(step).items():
            if math.isclose(c, 1 / factor, rel_tol=SAME_FACTOR):
                return (f"the manual step is {c:.4g} times {name}'s on every element at step {step}, "
                        f"1 / {factor:.4g}: {what}")
        return f"the manual step is {c:.4g} times {name}'s on every element at step {step}"
    return (f"the manual step differs from {name}'s by no single factor at step {step} (from "
            f"{np.min(ratio):.3g} to {np.max(ratio):.3g} times it): the state's update or the step's formula")


def check(other: Trajectory, case: Case, optimizer: Any) -> Updates:
    """The hand-written update along ``other``'s run (see the module's docstring)."""
    from crosscheck.judging.metrics import Divergence, causal, diverges_at

    names = other.param_names
    stop = diverges_at(other)
    steps = other.steps if stop is None else stop
    state: dict = {}
    worst = dict.fromkeys(names, 0.0)
    with np.errstate(all="ignore"):
        for k in range(steps):
            params = {n: np.array(other.params[n][k]) for n in names}
            grads = {n: np.array(other.grads[n][k]) for n in names}
            new, state = case.update(params, grads, state, f"at step {k}")
            bad = []
            for n in names:
                got = np.asarray(other.params[n][k + 1], np.float64)
                scale = float(causal(other, "param", n)[k])
                diff = np.abs(new[n] - got)
                err = float(np.max(diff, initial=0.0)) / scale
                err = err if math.isfinite(err) else math.inf
                ratio = float(np.max(np.abs(got - params[n]), initial=0.0)) / scale
                tol = tolerances.update_rtol(other.dtype, optimizer.memory(k), ratio)
                worst[n] = max(worst[n], err)
                if err > tol:
                    bad.append((n, err, tol, diff))
            if bad:
                n, err, tol, diff = bad[0]
                j = int(np.argmax(np.where(np.isnan(diff), np.inf, diff)))
                got = np.asarray(other.params[n][k + 1], np.float64)
                text = likely(new[n], got, params[n], optimizer, k)
                first = Divergence(other.case, other.framework, k, "update", n, float(np.ravel(new[n])[j]),
                                   float(np.ravel(got)[j]), err, "update", tol,
                                   explanation={"kind": "update", "factor": None, "elements": [],
                                                "text": text})
                return Updates(k + 1, worst, first, {("update", b[0]): k for b in bad})
    return Updates(steps, worst)
