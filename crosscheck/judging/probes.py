"""Probes of a wrong step: hypotheses about the whole backward, tested by evaluating it again.

Reading one gradient array against autograd's (:mod:`crosscheck.judging.mistakes`) names a
mistake whose fingerprint sits in that array: a factor, a sign, a clip. Three mistakes leave
none there, because the chain rule mixes them with every term downstream:

* ``kink``: the manual backward and autograd differ only at a point where the loss is not
  differentiable (a ReLU's pre-activation exactly 0, however the forward spells it, declared
  or not). The difference vanishes at parameters a little away (both sides then take the same
  branch), and the loss's one-sided slopes differ at the point itself;
* ``transpose``: a square matrix used untransposed in the backward where its transpose was
  meant (``np.dot(Whh, dhraw)`` for ``np.dot(Whh.T, dhraw)`` in a recurrence). The mistake
  vanishes where that matrix is symmetric;
* ``activation_derivative``: a sigmoid's or tanh's derivative left out at a tapped
  pre-activation. Autograd with that one derivative divided out gives the manual gradients;
* ``dead_units``: a ReLU's mask left out at a tapped pre-activation, where every unit is off
  on some sample (so no unit's gradient is right to tell it by). Autograd with that ReLU
  passing every unit gives the manual gradients.

Each probe evaluates the manual backward and the judged framework's autograd again (at moved
parameters, or with one derivative changed through ``frameworks.gradients``'s ``scale``),
and names the mistake only where the hypothesis makes the two agree
(:data:`crosscheck.tolerances.PROBE_SHARE`) and the plain comparison does not. A probe whose
evaluation the user's code fails (a forward that fails at moved parameters) names nothing.

:func:`read_step` is the one path by which ``run`` and ``explain`` name a step's mistake: the
array readings of every wrong gradient, the clearest of them, and these probes where none is
clean.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from crosscheck import tolerances
from crosscheck.declaring.cases import Case
from crosscheck.judging import mistakes, taps
from crosscheck.judging.metrics import rerun_overrides, sample_of, scale_at
from crosscheck.judging.mistakes import MAX_LISTED, Explanation
from crosscheck.running.record import Trajectory

Grads = Mapping[str, np.ndarray]

#: The activations whose derivative the probe tries leaving out: name -> (derivative at the
#: pre-activation z, how a backward writes it).
ACTIVATIONS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], str]] = {
    "sigmoid": (lambda z: (s := 1 / (1 + np.exp(-z))) * (1 - s), "s * (1 - s), sigmoid_prime(z)"),
    "tanh": (lambda z: 1 - np.tanh(z) ** 2, "(1 - h ** 2)"),
}
#: Besides the difference itself, the kink probe looks along this many of its largest
#: elements' own directions (a kink's gap can cancel along the whole difference).
KINK_DIRECTIONS = 3


class Unprobeable(Exception):
    """The user's code (the manual backward, the forward in a framework) failed at a probe's
    moved point or changed derivative: that probe says nothing."""


class Step:
    """Step ``k`` of ``traj`` evaluated again: the manual backward (the case's ``gradient``),
    the loss, the forward's taps, and a framework's autograd, at given parameters. A failure
    of the user's code there is :class:`Unprobeable`."""

    def __init__(self, traj: Trajectory, case: Case, k: int, hyper: Mapping,
                 framework: str | None = None, tapped: Mapping[str, np.ndarray] | None = None) -> None:
        self.traj, self.case, self.k, self.hyper = traj, case, k, dict(hyper)
        if tapped is not None:   # (the step's taps, already at hand)
            self.__dict__["tapped"] = dict(tapped)
        self.framework = framework or traj.framework
        self.params = {n: np.array(traj.params[n][k], np.float64) for n in traj.param_names}
        self.sample = sample_of(traj, k)
        self.problem = case.problem(**rerun_overrides(traj, case))

    def manual(self, params: Grads) -> dict[str, np.ndarray]:
        try:
            grads = self.case.gradient(params, self.hyper, self.sample)[1]
            return {n: np.asarray(grads[n], np.float64) for n in self.params}
        except Exception as e:
            raise Unprobeable(f"the manual backward: {e}") from e

    def autograd(self, params: Grads, scale: Mapping[str, np.ndarray] | None = None,
                 lift: Mapping[str, float] | None = None) -> dict[str, np.ndarray]:
        from crosscheck import frameworks

        try:
            got = frameworks.gradients(self.framework, self.problem, dict(params), self.sample,
                                       self.traj.dtype, scale=dict(scale) if scale else None,
                                       lift=dict(lift) if lift else None)
        except Exception as e:
            raise Unprobeable(f"{self.framework}'s autograd: {e}") from e
        return {n: np.asarray(got["params"][n], np.float64) for n in self.params}

    def loss(self, params: Grads) -> float:
        try:
            return float(self.case.loss_at(params, self.hyper, self.sample)[0])
        except Exception as e:
            raise Unprobeable(f"the loss: {e}") from e

    @functools.cached_property
    def tapped(self) -> dict[str, np.ndarray]:
        """The forward's tapped intermediates at this step's parameters (NumPy)."""
        try:
            return taps.tapped(self.case, self.traj, self.k)
        except Exception as e:
            raise Unprobeable(f"the forward: {e}") from e

    def apart(self, a: Grads, b: Grads) -> float:
        """How far two sets of gradients are apart, each parameter's largest difference
        relative to its causal scale at this step (as the local question's errors are)."""
        worst = max((float(np.max(np.abs(np.asarray(a[n]) - np.asarray(b[n])), initial=0.0))
                     / scale_at(self.traj, n, self.k) for n in self.params), default=0.0)
        return worst if math.isfinite(worst) else math.inf


def probe(traj: Trajectory, case: Case, k: int, hyper: Mapping, manual: Grads, autograd: Grads, tol: float,
          referees_agree: Callable[[], bool], framework: str | None = None,
          tapped: Mapping[str, np.ndarray] | None = None) -> Explanation | None:
    """The mistake the whole step ``k`` shows, where a probe finds one (see the module's
    docstring); ``manual`` and ``autograd``: the step's gradients as judged, ``tol`` the
    step's tolerance, ``referees_agree()``: whether the frameworks' autograds agree here (a
    kink is named only then; with no second framework to ask, the probe's own evidence
    stands alone); ``framework``: whose autograd ``autograd`` is (``traj``'s own where None);
    ``tapped``: the forward's taps at this step, where already at hand.
    A probe whose evaluation the user's code fails names nothing."""
    with np.errstate(all="ignore"):
        step = Step(traj, case, k, hyper, framework, tapped)
        before = step.apart(manual, autograd)
        if not math.isfinite(before) or before == 0:
            return None
        limit = max(tol, tolerances.PROBE_SHARE * before)
        try:
            if _vanishes_nearby(step, limit):
                return _kink(step, manual, autograd, tol) if referees_agree() else None
        except Unprobeable:
            return None
        for hypothesis in (_transposed, _activation, _mask):
            try:
                found = hypothesis(step, manual, limit)
            except Unprobeable:
                continue
            if found is not None:
                return found
    return None


# --------------------------------------------------------------------------- the step's reading
def context(traj: Trajectory, case: Case, k: int) -> dict[str, Any]:
    """What the array readings of step ``k`` need, computed once: the batch size and the
    outputs per sample (a factor's readings), the declared ReLUs' units off (a missing mask),
    the parameters and the declared penalty's gradient there (a penalty's fingerprint), and
    the forward's taps with the declared ReLUs exactly 0 (the probes'): one forward for all."""
    at = {n: traj.params[n][k] for n in traj.param_names}
    named, out = taps.forward_at(case, traj, k)
    batch, outputs = mistakes.sizes(traj, k, out)
    return {"batch": batch, "outputs": outputs, "units": taps.units_off(case, traj, k, named), "at": at,
            "penalty": case.penalty_gradient(at) if case.penalty_gradient is not None else {},
            "tapped": named, "zeros": taps.exact_zeros(case, traj, k, named)}


def reading(ctx: Mapping[str, Any], label: str, manual: Any, autograd: Any, tol: float,
            parameter: str | None = None, previous: Any = None) -> Explanation:
    """One array's reading (:func:`crosscheck.judging.mistakes.explain`) with the step's
    ``context``: ``parameter`` names the gradient's parameter (None: an intermediate)."""
    return mistakes.explain(label, manual, autograd, tol=tol, batch=ctx["batch"], outputs=ctx["outputs"],
                            previous=previous, units=ctx["units"],
                            value=ctx["at"].get(parameter) if parameter else None,
                            penalty=ctx["penalty"].get(parameter) if parameter else None, parameter=parameter)


def read_step(traj: Trajectory, case: Case, k: int, manual: Grads, autograd: Grads, tol: float,
              wrong: Sequence[str], referees_agree: Callable[[], bool], framework: str | None = None,
              previous: Grads | None = None) -> tuple[Explanation, list[Explanation]]:
    """Step ``k``'s likely mistake, as ``run`` and ``explain`` both name it: each ``wrong``
    gradient read on its own (in declaration order), the clearest of those readings
    (:func:`crosscheck.judging.mistakes.clearest`), and where none is clean, or a declared
    ReLU sits exactly at 0 at this step, what a probe of the whole step finds."""
    ctx = context(traj, case, k)
    readings = [reading(ctx, f"grad[{n}]", manual[n], autograd[n], tol, n,
                        None if previous is None else previous.get(n)) for n in wrong]
    chosen = mistakes.clearest(readings)
    weak = chosen.rank > mistakes.TELLING.index("dead_units")
    if weak or ctx["zeros"]:
        found = probe(traj, case, k, traj.hyper, manual, autograd, tol, referees_agree, framework,
                      ctx["tapped"])
        if found is not None and (found.rank < chosen.rank or found.kind == "kink"):
            chosen = found
    return chosen, readings


def _nudged(params: Grads, flip: float) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    out = {}
    for n, v in params.items():
        size = float(np.mean(np.abs(v))) if np.size(v) else 0.0
        signs = rng.choice((-1.0, 1.0), size=np.shape(v))
        # relative to each element and to its tensor's mean size: an element at exactly 0 moves too
        out[n] = v + flip * tolerances.KINK_NUDGE * (np.abs(v) + (size or 1.0)) * signs
    return out


def _vanishes_nearby(step: Step, limit: float) -> bool:
    """The manual backward and autograd agree at parameters moved a little each way."""
    for flip in (1.0, -1.0):
        moved = _nudged(step.params, flip)
        if step.apart(step.manual(moved), step.autograd(moved)) > limit:
            return False
    return True


def _slopes(step: Step, direction: Grads, h: float) -> tuple[float, float]:
    """The loss's left and right slopes along ``direction`` at the step's parameters, by
    one-sided differences of step ``h``."""
    def at(t):
        return step.loss({n: v + t * direction[n] for n, v in step.params.items()})
    here = at(0.0)
    return (here - at(-h)) / h, (at(h) - here) / h


def _kink(step: Step, manual: Grads, autograd: Grads, tol: float) -> Explanation | None:
    """``kink`` where the loss's one-sided slopes differ here along the difference of the two
    gradients, or along one of its largest elements (tolerances.KINK_GAP_SHARE), by as much
    at h as at h / 10, and both gradients' slopes along it lie between them: each is one
    convention at the kink (a mistake that vanishes where a parameter moves off 0, beside a
    kink elsewhere, leaves the manual slope outside)."""
    diff = {n: np.asarray(manual[n], np.float64) - np.asarray(autograd[n], np.float64) for n in step.params}
    size = max(float(np.max(np.abs(v), initial=0.0)) for v in step.params.values()) or 1.0
    directions = [diff]
    flat = [(abs(float(d)), n, i) for n, v in diff.items() for i, d in enumerate(np.ravel(v)) if d]
    for _, n, i in sorted(flat, reverse=True)[:KINK_DIRECTIONS]:
        e = {m: np.zeros_like(v) for m, v in diff.items()}
        e[n].flat[i] = np.sign(diff[n].flat[i])
        directions.append(e)
    for d in directions:
        reach = max(float(np.max(np.abs(v), initial=0.0)) for v in d.values())
        along = sum(float(np.sum(diff[n] * d[n])) for n in d)
        if not reach or not along:
            continue
        h = tolerances.KINK_NUDGE * size / reach
        (left, right), narrow = _slopes(step, d, h), _slopes(step, d, h / tolerances.KINK_STEP_RATIO)
        wide, gap = right - left, narrow[1] - narrow[0]
        slack = tolerances.KINK_GAP_SPREAD * abs(wide)
        low, high = min(narrow) - slack, max(narrow) + slack
        slopes = [sum(float(np.sum(np.asarray(g[n], np.float64) * d[n])) for n in d)
                  for g in (manual, autograd)]
        if (abs(wide) >= tolerances.KINK_GAP_SHARE * abs(along) and abs(gap - wide) <= slack
                and all(low <= s <= high for s in slopes)):
            zeros = [n for n, z in step.tapped.items() if np.any(np.asarray(z) == 0)]
            return _kink_text(diff, autograd, tol, abs(wide), zeros)
    return None


def _kink_text(diff: Grads, autograd: Grads, tol: float, gap: float, zeros: list[str]) -> Explanation:
    """The kink's reading: the gradients' elements that differ beyond ``tol``, the gap, and
    the tapped tensors exactly 0 at this step (where the forward taps any)."""
    wrong = []
    for n, v in diff.items():
        scale = float(np.max(np.abs(autograd[n]), initial=0.0)) or 1.0
        wrong += [(n, tuple(int(i) for i in np.unravel_index(j, np.shape(v))))
                  for j in np.flatnonzero(np.abs(np.ravel(v)) > tol * scale)]
    names = list(dict.fromkeys(n for n, _ in wrong))
    shown = ", ".join(f"{n}{list(i)}" for n, i in wrong[:MAX_LISTED])
    shown += ", ..." if len(wrong) > MAX_LISTED else ""
    return Explanation(
        "kink", f"the gradients of {', '.join(names)} differ only at a kink of the loss"
                f"{', where ' + ' and '.join(zeros) + ' is exactly 0' if zeros else ''} ({shown}): the "
                f"difference vanishes at parameters {tolerances.KINK_NUDGE:g} away, and the loss's one-sided "
                f"slopes differ here (by {gap:.3g}). There the derivative is a convention, not a value: "
                "(z > 0) gives 0, (z >= 0) and clamp 1, maximum 0.5; the forward's spelling and the "
                "backward's must agree (and compute the pre-activation alike: a sum in another order can "
                "land on the other side of 0)", elements=tuple(i for _, i in wrong[:MAX_LISTED]))


def _transposed(step: Step, manual: Grads, limit: float) -> Explanation | None:
    """``transpose`` where the mistake vanishes with one square matrix made symmetric."""
    for n, v in step.params.items():
        if np.ndim(v) != 2 or v.shape[0] != v.shape[1] or v.shape[0] < 2 or np.allclose(v, v.T):
            continue
        sym = {**step.params, n: (v + v.T) / 2}
        auto = step.autograd(sym)
        if all(not np.any(g) for g in auto.values()):
            continue   # nothing to compare there
        if step.apart(step.manual(sym), auto) <= limit:
            return Explanation(
                "transpose", f"the mistake vanishes where {n} is symmetric (at ({n} + {n}.T) / 2 the manual "
                             f"gradients agree with autograd's): the backward uses {n} where {n}.T is "
                             f"meant, or the reverse (np.dot({n}, d) for np.dot({n}.T, d) in a recurrence?)",
                parameter=None)
    return None


def _activation(step: Step, manual: Grads, limit: float) -> Explanation | None:
    """``activation_derivative`` where autograd with one activation's derivative divided out
    at a tapped pre-activation gives the manual gradients: at one tap, or at every tap at once
    (a recurrence's pre-activations, one tap per time step, all through one line of backward)."""
    taps = {n: np.asarray(z, np.float64) for n, z in step.tapped.items()
            if np.issubdtype(np.asarray(z).dtype, np.floating) and np.size(z)}
    for act, (derivative, written) in ACTIVATIONS.items():
        factors = {}
        for tap, z in taps.items():
            d = derivative(z)
            if np.all(np.isfinite(d)) and not np.any(d == 0):
                factors[tap] = 1 / d
        tries = [{tap: f} for tap, f in factors.items()] + ([factors] if len(factors) > 1 else [])
        for scale in tries:
            if step.apart(manual, step.autograd(step.params, scale=scale)) <= limit:
                where = ", ".join(scale)
                return Explanation(
                    "activation_derivative",
                    f"the manual gradients are autograd's with {act}'s derivative at {where} left out "
                    f"(autograd with it divided out at the tapped {where} gives them exactly): is the "
                    f"factor {written} missing where the backward passes through {act}({where})?")
    return None


def _mask(step: Step, manual: Grads, limit: float) -> Explanation | None:
    """``dead_units`` where autograd with one tapped pre-activation's ReLU passing every unit
    gives the manual gradients: the tapped tensor's values at or below 0 are replaced by the
    dtype's smallest normal number, its gradient passing unchanged (the forward moves by less
    than any rounding, and the ReLU's derivative there becomes 1, however it is spelled)."""
    tiny = float(np.finfo(np.dtype(step.traj.dtype)).tiny)
    for tap, z in step.tapped.items():
        if not np.issubdtype(np.asarray(z).dtype, np.floating):
            continue
        z = np.asarray(z, np.float64)
        off = ~(z > 0)
        if not off.any():
            continue
        if step.apart(manual, step.autograd(step.params, lift={tap: tiny})) <= limit:
            units = np.flatnonzero(off.reshape(-1, z.shape[-1]).any(axis=0)).tolist() if z.ndim else []
            return Explanation(
                "dead_units", f"the manual gradients are autograd's with the ReLU at {tap} passing every "
                              f"unit (units {units} are off on some sample): is {tap}'s mask missing from "
                              f"the backward (dL_d{tap} = dL_dA, or no dZ[Z <= 0] = 0)?")
    return None
