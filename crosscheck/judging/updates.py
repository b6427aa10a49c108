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


@dataclasses.dataclass(frozen=True)
class Updates:
    """What the update check found for one framework's run."""

    steps: int                          # steps compared
    worst: dict[str, float]             # parameter -> worst normwise error
    first: Any = None                   # metrics.Divergence of the first wrong update, or None
    first_steps: dict = dataclasses.field(default_factory=dict)   # ("update", param) -> first bad step
    errors: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))   # per step, the worst


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
    if np.ptp(ratio) <= tolerances.UPDATE_SAME_FACTOR * np.max(np.abs(ratio)):
        c = float(np.median(ratio))
        for what, factor in optimizer.factors(step).items():
            if math.isclose(c, 1 / factor, rel_tol=tolerances.UPDATE_SAME_FACTOR):
                return (f"the manual step is {c:.4g} times {name}'s on every element at step {step}, "
                        f"1 / {factor:.4g}: {what}")
        shown = f"{c:.4g}" if abs(c - 1) > tolerances.UPDATE_SAME_FACTOR else f"{c:.9g}"   # (never "1 times")
        return f"the manual step is {shown} times {name}'s on every element at step {step}"
    return (f"the manual step differs from {name}'s by no single factor at step {step} (from "
            f"{np.min(ratio):.3g} to {np.max(ratio):.3g} times it): the state's update or the step's formula")


def _leaves(state: Any, path: str = "state") -> list[tuple[str, np.ndarray]]:
    """Every array (or number) in a hand-written optimizer's state, with its path."""
    if isinstance(state, dict):
        return [leaf for k, v in state.items() for leaf in _leaves(v, f"{path}[{k!r}]")]
    if isinstance(state, (list, tuple)):
        return [leaf for i, v in enumerate(state) for leaf in _leaves(v, f"{path}[{i}]")]
    a = np.asarray(state) if isinstance(state, (np.ndarray, int, float, np.number)) else None
    return [(path, np.asarray(a, np.float64))] if a is not None and a.dtype.kind in "fiub" else []


def states_compared(other: Trajectory, optimizer: Any, step: int, manual_state: dict) -> str:
    """The hand-written state after ``step`` beside torch.optim's, replayed on ``other``'s own
    parameters and gradients up to that step: which of torch.optim's buffers (exp_avg,
    momentum_buffer, ...) some array of the manual state matches, and which none does. ""
    where torch cannot run the declaration, or is not installed."""
    from crosscheck.frameworks.registry import REGISTRY

    fw = REGISTRY.get("torch")
    if fw is None or optimizer.cannot("torch"):
        return ""
    try:
        update, state = fw.reference_update(optimizer, float(other.hyper["lr"])), {}
        for k in range(step + 1):
            update({n: other.params[n][k] for n in other.param_names},
                   {n: other.grads[n][k] for n in other.param_names}, state)
        leaves, opt = state["torch"]
        theirs = [(f"{buf} of {n}", np.asarray(v.detach().numpy() if hasattr(v, "detach") else v, np.float64))
                  for n, p in leaves.items() for buf, v in opt.state[p].items() if buf != "step"]
    except Exception:   # (no torch here: nothing to name the state by)
        return ""
    mine = _leaves(manual_state)
    matched, missing = [], []
    for name, a in theirs:
        scale = float(np.max(np.abs(a), initial=0.0)) or 1.0
        same = [path for path, b in mine if b.shape == a.shape
                and float(np.max(np.abs(b - a), initial=0.0)) <= tolerances.UPDATE_SAME_STATE * scale]
        (matched if same else missing).append(f"{name} = {same[0]}" if same else name)
    if not theirs:
        return ""
    if not missing:
        return (f"your state matches torch.optim's after step {step} ({'; '.join(matched[:3])}"
                f"{'; ...' if len(matched) > 3 else ''}): the step taken from it differs")
    return (f"torch.optim's {', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''} after step {step} "
            f"matches no array of your state ({len(matched)} of {len(theirs)} buffers do)")


def check(other: Trajectory, case: Case, optimizer: Any) -> Updates:
    """The hand-written update along ``other``'s run (see the module's docstring)."""
    from crosscheck.judging.metrics import Divergence, causal, diverges_at

    names = other.param_names
    stop = diverges_at(other)
    steps = other.steps if stop is None else stop
    state: dict = {}
    worst = dict.fromkeys(names, 0.0)
    per_step = np.zeros(steps)
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
                per_step[k] = max(per_step[k], err)
                if err > tol:
                    bad.append((n, err, tol, diff))
            if bad:
                n, err, tol, diff = bad[0]
                j = int(np.argmax(np.where(np.isnan(diff), np.inf, diff)))
                got = np.asarray(other.params[n][k + 1], np.float64)
                text = likely(new[n], got, params[n], optimizer, k)
                named = states_compared(other, optimizer, k, state)
                text = f"{text}; {named}" if named else text
                first = Divergence(other.case, other.framework, k, "update", n, float(np.ravel(new[n])[j]),
                                   float(np.ravel(got)[j]), err, "update", tol,
                                   explanation={"kind": "update", "factor": None, "elements": [],
                                                "text": text})
                return Updates(k + 1, worst, first, {("update", b[0]): k for b in bad}, per_step[:k + 1])
    return Updates(steps, worst, errors=per_step)
