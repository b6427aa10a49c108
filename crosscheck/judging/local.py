"""The local question: is the manual backward right at step k?

At every step, the reference's manual gradient and loss are evaluated *at the framework's
own parameters* (and its own carried state) and compared with that framework's autograd
values there. Nothing is carried from step to step, so the answer is well-conditioned
however chaotic the run: a wrong gradient line is caught at the step and parameter where it
first matters, at rounding-level tolerance. Where a step exceeds the plain bound, its own
sensitivity, the same code in extended precision and the other framework's autograd are
consulted before anything is called wrong (:mod:`crosscheck.tolerances`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from crosscheck import tolerances
from crosscheck.declaring.cases import Case, Gradient
from crosscheck.judging import taps
from crosscheck.judging.metrics import (
    QUANTITY_ORDER,
    Divergence,
    _case,
    _element,
    causal,
    diverges_at,
    rerun_overrides,
    sample_of,
    scale_at,
    step_errors,
)
from crosscheck.running.record import Trajectory, buffer, every, ranges, release


# --------------------------------------------------------------------------- the local question
@dataclasses.dataclass(frozen=True)
class Local:
    errors: dict[str, np.ndarray]      # "loss" / param name -> (steps compared,) normwise error
    allowed: np.ndarray                # (steps compared,) tolerance per step
    manual: dict[str, np.ndarray]      # the manual values, (steps compared, *shape)
    steps: int
    extended: dict[int, float] = dataclasses.field(default_factory=dict)  # step -> error, extended precision
    split: int | None = None           # first step where the two autograds part (not judged from there)
    split_disagreement: float = 0.0    # how far they part there
    parted: dict[int, float] = dataclasses.field(default_factory=dict)   # step -> how far the two
    #                                    autograds are apart there, where it was measured


def _manual_at(other: Trajectory, gradient: Gradient, hyper: Mapping[str, Any], step: int,
               params: Mapping[str, np.ndarray]):
    loss, grads = gradient(params, hyper, sample_of(other, step))
    return float(loss), grads


def local(other: Trajectory, ref: Trajectory | None = None, reference: Case | None = None,
          cond: np.ndarray | None = None) -> Local:
    """The manual backward at each of ``other``'s own parameters, against its autograd.

    Where ``other``'s parameters equal the reference's bitwise, the reference's recorded
    values are the manual ones (the same function at the same inputs) and are reused.
    The check stops at the first step where the framework's parameters, loss or gradients
    are not finite: the run has left the numbers (see :func:`diverges_at`). The step whose
    update first overflows is still checked: its loss and gradients are finite numbers.
    """
    gradient: Gradient = _case(other.case, reference).gradient
    hyper = dict(ref.hyper if ref is not None else other.hyper)
    names = other.param_names
    stop = diverges_at(other)
    if stop is not None and np.isfinite(other.step_loss[stop]) and all(
            np.all(np.isfinite(other.grads[n][stop])) for n in names):
        stop += 1   # only the parameters after it left the numbers
    steps = other.steps if stop is None else stop
    manual = {n: buffer((steps, *other.grads[n].shape[1:]), np.float64) for n in names}
    manual_loss = np.empty(steps)
    same = np.zeros(steps, bool)
    if ref is not None and ref.steps == other.steps and steps and names:
        same[:] = True
        for n in names:
            for s in ranges(steps, other.params[n], ref.params[n]):
                equal = np.equal(other.params[n][s], ref.params[n][s])
                same[s] &= equal.reshape(s.stop - s.start, -1).all(axis=1)
        for n, v in other.state.items():   # a carried state the backward reads: equal too
            if n not in ref.state:
                same[:] = False
                continue
            equal = np.equal(v[:steps], ref.state[n][:steps])
            same &= equal.reshape(steps, -1).all(axis=1)
    touched = (*manual.values(), *other.params.values(), *(ref.grads.values() if ref is not None else ()))
    n_release = every(steps, *touched)
    with np.errstate(all="ignore"):
        for k in range(steps):
            if (k + 1) % n_release == 0:
                release(*touched)
            if same[k]:
                manual_loss[k] = ref.step_loss[k]
                for n in names:
                    manual[n][k] = ref.grads[n][k]
                continue
            params = {n: other.params[n][k] for n in names}   # gradient() copies what it uses
            manual_loss[k], g = _manual_at(other, gradient, hyper, k, params)
            for n in names:
                manual[n][k] = _shaped(g, n, other.grads[n].shape[1:], other)
    u = tolerances.UNIT_ROUNDOFF[other.dtype]
    c = (np.ones(other.steps) if cond is None else cond)[:steps]
    errors = {"loss": step_errors(manual_loss, other.step_loss[:steps], causal(other, "loss")[:steps])}
    for n in names:
        errors[n] = step_errors(manual[n], other.grads[n][:steps], causal(other, "grad", n)[:steps])
    allowed = tolerances.local_rtol(other.dtype) * c
    worst = np.max(list(errors.values()), axis=0) if errors else np.zeros(steps)
    case = _case(other.case, reference)
    referee = _Referee(other, case)
    extended: dict[int, float] = {}
    split = None
    for k in np.flatnonzero(worst > allowed):
        if same[k]:
            # The reference's record is the manual gradient only if its loop used it as the
            # backward gives it: evaluate it afresh here before judging (a loop that scales a
            # gradient it records is the trajectories' to show, not the backward's).
            manual_loss[k], g = _manual_at(other, gradient, hyper, k, {n: other.params[n][k] for n in names})
            errors["loss"][k] = step_errors(manual_loss[k:k + 1], other.step_loss[k:k + 1],
                                            causal(other, "loss")[k:k + 1])[0]
            for n in names:
                manual[n][k] = _shaped(g, n, other.grads[n].shape[1:], other)
                errors[n][k] = step_errors(manual[n][k:k + 1], other.grads[n][k:k + 1],
                                           causal(other, "grad", n)[k:k + 1])[0]
            worst[k] = max(float(e[k]) for e in errors.values())
            if worst[k] <= allowed[k]:
                continue
        # Rounding-level differences exceed the plain bound only where the gradient itself is
        # ill-conditioned (a residual that cancels near a fit): measure that sensitivity there.
        allowed[k] = tolerances.local_rtol(other.dtype, _sensitivity(other, gradient, hyper, k, u,
                                                                     manual_loss, manual, case)) * c[k]
        if worst[k] <= allowed[k]:
            continue
        # Or the code's own rounding: the same code in extended precision (tolerances.py).
        precise = _precise_error(other, case, hyper, k, manual_loss, manual)
        if precise is not None and precise[0] <= allowed[k]:
            extended[k] = precise[0]
            allowed[k] = worst[k]
            continue
        # Or both codes' rounding, where the manual code's own is measured above the plain bound
        # (a saturated tanh's 1 - h**2 from an h one ulp off: tolerances.py).
        if precise is not None and math.isfinite(precise[1]):
            wider = tolerances.local_rtol(other.dtype, precise[1]) * c[k]
            if worst[k] <= wider:
                extended[k] = precise[0]
                allowed[k] = wider
                continue
        # Or autograd's: where the two frameworks part, neither can judge (tolerances.py).
        d = referee.disagreement(k)
        each = referee.parts.get(k, {})
        # Per quantity: one both autograds agree on, where the manual value does not, is a mistake.
        margin = {q: max(allowed[k], tolerances.REFEREE_MARGIN * each.get(q, 0.0)) for q in errors}
        if d > allowed[k] and all(float(errors[q][k]) <= margin[q] for q in errors):
            split = int(k)
        break   # a real mismatch, or the end of what can be judged: later steps are not needed
    if split is not None:
        steps = split
        errors = {n: e[:steps] for n, e in errors.items()}
        allowed, manual_loss = allowed[:steps], manual_loss[:steps]
        manual = {n: v[:steps] for n, v in manual.items()}
    manual["loss"] = manual_loss
    return Local(errors, allowed, manual, steps, extended, split, referee.steps.get(split, 0.0),
                 referee.measured)


def _precise_error(other: Trajectory, case: Case, hyper, k: int, manual_loss: np.ndarray | None = None,
                   manual: Mapping[str, np.ndarray] | None = None) -> tuple[float, float] | None:
    """At step ``k``, the case's manual backward run in extended precision at ``other``'s
    parameters, as normwise errors: of ``other``'s autograd against it, and of the float64
    manual values (``manual_loss``, ``manual``, where given) against it, the code's own
    rounding there (NaN where not given). None: no such run."""
    if case.gradient_precise is None:
        return None
    params = {n: other.params[n][k] for n in other.param_names}
    got = case.gradient_precise(params, hyper, sample_of(other, k))
    if got is None:
        return None
    loss, grads = got
    recorded = {n: other.grads[n][k] for n in other.param_names}
    worst = _apart(other, k, loss, grads, other.step_loss[k], recorded)
    own = math.nan
    if manual is not None and manual_loss is not None:
        own = _apart(other, k, loss, grads, manual_loss[k], {n: manual[n][k] for n in other.param_names})
    return (worst, own) if math.isfinite(worst) else None


class _Referee:
    """Both frameworks' autograd, computed afresh at ``other``'s own parameters: how far two
    autograd implementations disagree there (see ``tolerances.py``). 0 where no other
    framework can be imported."""

    def __init__(self, other: Trajectory, case: Case) -> None:
        self.other, self.case, self.steps, self.parts, self.measured = other, case, {}, {}, {}
        self.problem = None

    def disagreement(self, k: int) -> float:
        from crosscheck import frameworks

        t = self.other
        names = [f for f in frameworks.FRAMEWORKS if f != t.framework]
        if not names:
            return 0.0
        if self.problem is None:
            self.problem = self.case.problem(**rerun_overrides(t, self.case))
        params = {n: t.params[n][k] for n in t.param_names}
        try:   # both afresh: what this run recorded is what is being judged, not a judge
            own, got = (frameworks.gradients(fw, self.problem, params, sample_of(t, k), t.dtype)
                        for fw in (t.framework, names[0]))
        except Exception:   # not importable, or this model's forward does not run there: no referee
            return 0.0
        parts = _apart_each(t, k, got["loss"], got["params"], own["loss"], own["params"])
        self.parts[k] = {q: v if math.isfinite(v) else 0.0 for q, v in parts.items()}
        d = float(np.max(list(parts.values())))
        d = d if math.isfinite(d) else 0.0
        if d > 0:
            self.steps[k] = d
        self.measured[k] = d
        return d


def _explained(d: Divergence, other: Trajectory, loc: Local, case: Case) -> Divergence:
    """``d`` (a wrong manual gradient) with its worst elements and the likely mistake: every
    gradient wrong at its step read (``explanations``, in declaration order), and the step's
    reading (``explanation``: :func:`crosscheck.judging.probes.read_step`)."""
    from crosscheck.judging import mistakes, probes

    k = d.step
    wrong = [n for n in other.param_names if loc.errors[n][k] > loc.allowed[k] or n == d.parameter]
    manual = {n: loc.manual[n][k] for n in other.param_names}
    autograd = {n: other.grads[n][k] for n in other.param_names}
    previous = {n: other.grads[n][k - 1] for n in other.param_names} if k else None
    parted = loc.parted.get(k)

    def referees_agree() -> bool:
        d_k = parted if parted is not None else _Referee(other, case).disagreement(k)
        return d_k <= d.tol
    chosen, readings = probes.read_step(other, case, k, manual, autograd, d.tol, wrong, referees_agree,
                                        previous=previous)
    rows = mistakes.worst_elements(manual[d.parameter], {other.framework: autograd[d.parameter]})
    return dataclasses.replace(d, explanation=chosen.as_dict(),
                               explanations=tuple(r.as_dict() for r in readings), elements=tuple(rows))


def _shaped(grads: Mapping[str, Any], name: str, shape: tuple, traj: Trajectory) -> np.ndarray:
    g = np.asarray(grads[name], np.float64)
    if g.shape != shape:
        raise ValueError(f"[{traj.case}] the manual gradient of {name} has shape {g.shape}, "
                         f"its parameter {shape}")
    return g


def _apart_each(t: Trajectory, k: int, loss_a: Any, grads_a: Mapping[str, Any], loss_b: Any,
                grads_b: Mapping[str, Any]) -> dict[str, float]:
    """How far two evaluations of step ``k``'s loss and gradients are apart, normwise, each
    quantity ("loss", each parameter) relative to ``t``'s causal scale at ``k`` (as the local
    errors are); NaN or inf where they cannot be compared."""
    with np.errstate(all="ignore"):
        apart = {"loss": abs(float(loss_a) - float(loss_b)) / scale_at(t, "loss", k)}
        for n in t.param_names:
            diff = np.abs(np.asarray(grads_a[n], np.float64) - np.asarray(grads_b[n], np.float64))
            apart[n] = float(np.max(diff, initial=0.0)) / scale_at(t, n, k)
    return apart


def _apart(t: Trajectory, k: int, loss_a: Any, grads_a: Mapping[str, Any], loss_b: Any,
           grads_b: Mapping[str, Any]) -> float:
    """The largest of :func:`_apart_each`'s (NaN anywhere is NaN)."""
    return float(np.max(list(_apart_each(t, k, loss_a, grads_a, loss_b, grads_b).values())))


def nudged(params: Mapping[str, Any], u: float, flip: float) -> dict[str, np.ndarray]:
    """Every parameter moved by ``u`` relative, elements up and down alternately (``flip``
    -1.0 the other way round): the probe of a gradient's sensitivity to rounding."""
    out = {}
    for n, v in params.items():
        v = np.array(v, np.float64)
        signs = np.where(np.arange(v.size) % 2 == 0, flip, -flip).reshape(v.shape)
        out[n] = v * (1 + u * signs)
    return out


def _sensitivity(other: Trajectory, gradient: Gradient, hyper, k: int, u: float,
                 manual_loss: np.ndarray, manual: dict[str, np.ndarray], case: Case | None = None) -> float:
    """How far the manual loss and gradients move, normwise (causal scale), when every
    parameter moves by ``u`` relative, up and down alternately and then the other way: the
    rounding-level difference two correct evaluations at step ``k`` can show."""
    at = {n: other.params[n][k] for n in other.param_names}
    base = {n: manual[n][k] for n in other.param_names}
    sample = sample_of(other, k)
    if case is not None and taps.exact_zeros(case, other, k):
        return 0.0   # on a ReLU kink the gradient jumps under any nudge: nothing to measure
    sides = case.loss_at(at, hyper, sample)[1] if case is not None else ()
    worst = 0.0
    for flip in (1.0, -1.0):
        moved = nudged(at, u, flip)
        if case is not None and case.loss_at(moved, hyper, sample)[1] != sides:
            continue   # the nudge crossed a ReLU kink: a jump of the gradient, not its rounding
        loss, g = _manual_at(other, gradient, hyper, k, moved)
        d = _apart(other, k, loss, g, manual_loss[k], base)
        if d > tolerances.JUMP_CHECK * u:
            # So large a move is a linear response, or a jump across a kink nobody declared
            # (a maximum, a where, an abs at exactly 0): a linear one grows with the nudge.
            grown = _apart(other, k, *_manual_at(other, gradient, hyper, k,
                                                 nudged(at, tolerances.JUMP_NUDGE * u, flip)),
                           manual_loss[k], base)
            if not grown >= tolerances.JUMP_GROWTH * d:
                continue
        worst = max(worst, d)
    return worst if math.isfinite(worst) else 0.0


# --------------------------------------------------------------------------- both questions
def local_divergence(other: Trajectory, loc: Local, case: Case
                     ) -> tuple[Divergence | None, dict[tuple[str, str | None], int]]:
    """The local question's answer: the first step and quantity (the loss, or a parameter's
    gradient) where the manual value is off autograd's beyond the tolerance, with a wrong
    gradient's worst elements and likely mistake; and every quantity's first bad step."""
    first_steps: dict[tuple[str, str | None], int] = {}
    candidates = []
    for key, err in loc.errors.items():
        bad = np.flatnonzero(err > loc.allowed)
        if bad.size:
            k = int(bad[0])
            quantity, name = ("loss", None) if key == "loss" else ("grad", key)
            first_steps[(quantity, name)] = k
            want = loc.manual[key][k]
            got = other.step_loss[k] if key == "loss" else other.grads[key][k]
            expected, value = _element(got, want)
            candidates.append((k, QUANTITY_ORDER.index(quantity), Divergence(
                other.case, other.framework, k, quantity, name, expected, value, float(err[k]), "local",
                float(loc.allowed[k]))))
    first = min(candidates, key=lambda c: c[:2])[2] if candidates else None
    if first is not None and first.quantity == "grad":
        first = _explained(first, other, loc, case)
    return first, first_steps
