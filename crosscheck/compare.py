"""A framework's run against the reference, as two separate questions.

* **Local: is the manual backward right at step k?** At every step, the reference's manual
  gradient and loss are evaluated *at the framework's own parameters* and compared with
  that framework's autograd values there. Nothing is carried from step to step, so the
  answer is well-conditioned however chaotic the run: a wrong gradient line is caught at
  the step and parameter where it first matters, at rounding-level tolerance.
* **Global: do the trajectories agree?** Loss, gradients, parameters, predictions and ReLU
  masks step by step, within an :class:`Envelope` measured on the reference's own
  sensitivity (a shadow run from initial values moved by one ulp). Where that envelope
  reaches :data:`tolerances.PREDICTABLE`, the run is past its predictability horizon and
  only its qualitative behaviour is still comparable (done by the report).

Errors are normwise relative with a causal scale (see :mod:`crosscheck.tolerances`).
A run that leaves the finite numbers is compared up to that step; all implementations
leaving it at the same step is agreement on a divergence.
"""

from __future__ import annotations

import dataclasses
import math
import weakref
from collections.abc import Mapping
from typing import Any

import numpy as np

from crosscheck import cases, tolerances
from crosscheck.cases import Case, Gradient
from crosscheck.frameworks.registry import REGISTRY
from crosscheck.record import Trajectory, buffer, every, finite_rows, ranges, release

#: Report groups: the keys of ``max_rel_err`` (the global question).
GROUPS = ("loss", "grads", "params", "predictions")
#: The two questions, in the order a verdict names them.
QUESTIONS = ("local", "update", "global")
#: Order of the quantities within one step, for picking the first divergence.
QUANTITY_ORDER = ("divergence", "init", "loss", "epoch_loss", "grad", "update", "param", "state", "mask",
                  "pred_train", "pred_test")


@dataclasses.dataclass(frozen=True)
class Divergence:
    """The first place a framework's run and the reference disagree."""

    case: str
    framework: str
    step: int            # update step; params are "after step k", init is step 0
    quantity: str        # one of QUANTITY_ORDER
    parameter: str | None
    expected: float      # the reference's value (the worst element)
    got: float
    error: float         # normwise relative error at that step
    question: str = "global"   # "local": the manual gradient; "update": the manual optimizer;
    #                            "global": the trajectories
    tol: float = 0.0
    explanation: dict | None = None   # local: the likely mistake (crosscheck.mistakes.Explanation)
    elements: tuple = ()              # local: the worst elements, manual beside autograd

    def __str__(self) -> str:
        what = f"{self.quantity}[{self.parameter}]" if self.parameter else self.quantity
        if self.quantity == "divergence":
            return (f"[{self.case}/{self.framework}] the runs leave the finite numbers at different "
                    f"steps: reference at step {self.expected:g}, {self.framework} at step {self.got:g}")
        if self.question == "update":
            return (f"[{self.case}/{self.framework}] manual update wrong at step {self.step}: "
                    f"param[{self.parameter}] manual {self.expected!r} vs "
                    f"{_optimizer_library(self.framework)} "
                    f"{self.got!r} from the same parameters and gradients (normwise rel. err "
                    f"{self.error:.3g} > tol {self.tol:.2g})")
        if self.question == "local":
            return (f"[{self.case}/{self.framework}] manual backward wrong at step {self.step}: {what} "
                    f"manual {self.expected!r} vs {self.framework} autograd {self.got!r} at the same "
                    f"parameters (normwise rel. err {self.error:.3g} > tol {self.tol:.2g})")
        return (f"[{self.case}/{self.framework}] trajectories part at step {self.step}: {what} "
                f"reference {self.expected!r} vs {self.framework} {self.got!r} "
                f"(normwise rel. err {self.error:.3g} > envelope {self.tol:.2g})")

    def as_dict(self) -> dict:
        return {"question": self.question, "step": self.step, "quantity": self.quantity,
                "parameter": self.parameter, "expected": _json_float(self.expected),
                "got": _json_float(self.got), "error": _json_float(self.error),
                "tolerance": _json_float(self.tol), "explanation": self.explanation,
                "elements": list(self.elements)}


def _optimizer_library(framework: str) -> str:
    """The optimizer library that ran ``framework``'s update ("torch.optim", "optax")."""
    return REGISTRY[framework].optimizer_library if framework in REGISTRY else framework


@dataclasses.dataclass(frozen=True)
class Envelope:
    """What a correct implementation may differ from the reference by, step by step.

    Attributes:
        per_step: (S,) allowed normwise error at step k (loss and gradients at step k,
            parameters after it); see :func:`tolerances.envelope`.
        shadow: (S,) the measured normwise difference of the shadow run from the reference.
        horizon: the first step where ``per_step`` exceeds ``tolerances.PREDICTABLE``; None
            when the whole run is predictable.
        diverges_at: first step where the reference leaves the finite numbers (None: never).
    """

    per_step: np.ndarray
    shadow: np.ndarray
    horizon: int | None
    diverges_at: int | None

    def at(self, step: int) -> float:
        return float(self.per_step[min(step, len(self.per_step) - 1)]) if len(self.per_step) else 0.0


@dataclasses.dataclass(frozen=True)
class Comparison:
    case: str
    framework: str
    tol: float                                        # the envelope where the global check ends
    max_rel_err: dict[str, float]                     # GROUPS -> worst global error
    per_quantity: dict[tuple[str, str | None], float]  # (quantity, parameter) -> worst global error
    first_steps: dict[tuple[str, str | None], int]     # (quantity, parameter) -> first bad step
    mask_mismatches: int
    first: Divergence | None                          # the earliest of local_first and global_first
    horizon: int | None = None                        # predictability horizon (None: none)
    local_first: Divergence | None = None
    global_first: Divergence | None = None
    local_max: dict[str, float] = dataclasses.field(default_factory=dict)   # "loss"/param -> worst
    local_tol: float = 0.0
    local_steps: int = 0                              # steps the local check compared
    local_first_steps: dict[tuple[str, str | None], int] = dataclasses.field(default_factory=dict)
    diverges_at: dict[str, int | None] = dataclasses.field(default_factory=dict)  # impl -> step
    update_first: Divergence | None = None   # the first wrong step of a hand-written update
    update_max: dict[str, float] = dataclasses.field(default_factory=dict)   # param -> worst
    update_steps: int = 0                    # steps the update check compared (0: no update declared)
    autograd_split: int | None = None   # first step where the autograds disagree beyond rounding
    autograd_disagreement: float = 0.0  # how far they part there (normwise)
    extended_steps: int = 0             # steps the manual backward was confirmed in extended precision
    # Per step, for the error plot: the local errors (worst of loss and gradients) and their
    # tolerance, over the steps judged; the trajectories' difference, up to where compared.
    local_errors: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    local_allowed: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))
    global_errors: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))

    @property
    def agree(self) -> bool:
        """No divergence, and at least one step's gradients compared: a check that compared
        nothing (a run not finite from step 0) never agrees."""
        return self.first is None and self.local_steps > 0

    @property
    def question(self) -> str | None:
        """Which question failed first: ``local``, ``global``, ``nothing compared`` (no
        step's gradients could be compared), or None."""
        if self.first is None and self.local_steps == 0:
            return "nothing compared"
        return self.first.question if self.first else None

    def blamed(self) -> set[tuple[str, str | None]]:
        """Every (quantity, parameter) that goes wrong at the first divergent step, for the
        question that failed."""
        if self.first is None:
            return set()
        steps = (self.local_first_steps if self.first.question in ("local", "update")
                 else self.first_steps)
        return {q for q, k in steps.items() if k == self.first.step}


def _json_float(v: float) -> float | str:
    return v if math.isfinite(v) else str(v)


def causal_scale(ref: np.ndarray) -> np.ndarray:
    """Per step, the largest finite ``|ref|`` seen up to and including that step.

    Shape ``(steps,)``. Judging step ``k`` against the scale reached so far keeps a
    decaying gradient measured against the size it had, while a later blow-up (a run
    that diverges) cannot hide an earlier error. A scale of 0 (exact zeros so far,
    e.g. a dead unit's gradient) becomes 1, so the error there is absolute.
    """
    if np.size(ref) == 0:
        return np.ones(len(ref))
    mag = np.empty(len(ref))
    for s in ranges(len(ref), ref):   # a long record a range of steps at a time
        r = np.asarray(ref[s], np.float64).reshape(s.stop - s.start, -1)
        m = np.abs(r).max(axis=1)
        bad = np.flatnonzero(~np.isfinite(m))   # rows with inf or NaN: their finite values
        if bad.size:
            m[bad] = np.where(np.isfinite(r[bad]), np.abs(r[bad]), 0.0).max(axis=1)
        mag[s] = m
    scale = np.maximum.accumulate(mag) if mag.size else mag
    return np.where(scale > 0, scale, 1.0)


#: Causal scales (and the first non-finite step) of the trajectories in use, each computed
#: once: trajectory -> (quantity, name) -> (steps,) (weakly held: gone with the trajectory).
_scales: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def causal(t: Trajectory, quantity: str, name: str | None = None) -> np.ndarray:
    """:func:`causal_scale` of ``t``'s ``loss``, ``grad`` ``name`` or ``param`` ``name``
    (the parameters after each step: ``params[name][1:]``), computed once per trajectory."""
    per = _scales.setdefault(t, {})
    if (quantity, name) not in per:
        values = {"loss": lambda: t.step_loss, "grad": lambda: t.grads[name],
                  "param": lambda: t.params[name][1:]}[quantity]()
        per[quantity, name] = causal_scale(values)
    return per[quantity, name]


def scale_at(t: Trajectory, name: str, k: int) -> float:
    """:func:`causal_scale` of ``t``'s gradient ``name`` (or ``"loss"``) at step ``k``."""
    return float(causal(t, "loss")[k] if name == "loss" else causal(t, "grad", name)[k])


def step_errors(got: np.ndarray, ref: np.ndarray, scale: np.ndarray | None = None) -> np.ndarray:
    """Normwise relative error per leading index (step): max |got - ref| / causal_scale(ref).

    NaN in both at the same place is no error; NaN or inf on one side only is inf.
    """
    if np.shape(got) != np.shape(ref):
        raise ValueError(f"shape {np.shape(got)} vs reference {np.shape(ref)}")
    if np.ndim(ref) == 0:
        got, ref = np.asarray(got)[None], np.asarray(ref)[None]
    scale = causal_scale(ref) if scale is None else scale
    out = np.zeros(len(ref))
    if not np.size(ref):
        return out
    for s in ranges(len(ref), got, ref):   # a long record a range of steps at a time
        n = s.stop - s.start
        g = np.asarray(got[s], np.float64).reshape(n, -1)
        r = np.asarray(ref[s], np.float64).reshape(n, -1)
        with np.errstate(invalid="ignore", over="ignore"):
            d = np.subtract(g, r)
            worst = np.abs(d, out=d).max(axis=1)
            # x -> x / scale rounds monotonically, so dividing the row's largest difference is
            # dividing every difference and taking the largest, at a third of the passes.
            out[s] = worst / scale[s]
            bad = np.flatnonzero(~np.isfinite(worst))   # inf or NaN somewhere in the row
            if bad.size:
                gb, rb = g[bad], r[bad]
                diff = np.abs(gb - rb) / scale[s][bad, None]
                same_nonfinite = (~np.isfinite(rb) & ~np.isfinite(gb)
                                  & ((np.isnan(rb) & np.isnan(gb)) | (rb == gb)))
                diff = np.where(same_nonfinite, 0.0, np.where(np.isnan(diff), np.inf, diff))
                out[s.start + bad] = diff.max(axis=1)
    return out


def _element(got: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """The reference's and the other's value at the worst element of one step."""
    g, r = np.asarray(got, np.float64).ravel(), np.asarray(ref, np.float64).ravel()
    if not g.size:
        return math.nan, math.nan
    with np.errstate(invalid="ignore"):
        j = int(np.argmax(np.where(np.isnan(g) == np.isnan(r), np.nan_to_num(np.abs(g - r)), np.inf)))
    return float(r[j]), float(g[j])


def diverges_at(t: Trajectory) -> int | None:
    """First step whose loss, gradients or resulting parameters are not all finite."""
    per = _scales.setdefault(t, {})   # once per trajectory
    if ("diverges", None) not in per:
        ok = np.isfinite(t.step_loss)
        for name in t.param_names:
            ok &= finite_rows(t.grads[name]) & finite_rows(t.params[name][1:])
        bad = np.flatnonzero(~ok)
        per["diverges", None] = int(bad[0]) if bad.size else None
    return per["diverges", None]


def _beyond_range(ref: Trajectory, step: int, dtype: str) -> bool:
    """The reference's own values at ``step`` are past the square root of ``dtype``'s largest
    number (so one product, a square, overflows there), in a lower precision than its own."""
    if np.dtype(dtype).itemsize >= np.dtype(ref.dtype).itemsize:
        return False
    limit = math.sqrt(float(np.finfo(dtype).max))
    values = [ref.step_loss[step], *(ref.grads[n][step] for n in ref.param_names),
              *(ref.params[n][step] for n in ref.param_names)]
    with np.errstate(all="ignore"):
        return any(not np.all(np.abs(np.asarray(v, np.float64)) < limit) for v in values)


def rerun_overrides(traj: Trajectory) -> dict[str, Any]:
    """The keyword arguments that redo ``traj``'s run (its recorded hyper-parameters)."""
    keys = cases.get(traj.case).reruns
    return {k: tuple(v) if isinstance(v, list) else v for k, v in traj.hyper.items() if k in keys}


def sample_of(traj: Trajectory, step: int) -> Any:
    """What step ``step`` of ``traj`` sees besides its parameters. For a run of the general
    loop, an :class:`~crosscheck.loop.At`: the step, in the run's feed, and the run's own
    carried state at its start. Otherwise the sample a per-sample update step sees (None
    for full batch): a run of several steps per epoch is per-sample; so is a user's
    ``batch="sample"`` model of one sample."""
    if traj.feed is not None:
        from crosscheck.loop import At

        return At(step, {n: v[step] for n, v in traj.state.items()})
    per_epoch = traj.steps // max(traj.epochs, 1)
    if per_epoch > 1 or traj.hyper.get("batch") == "sample":
        return step % per_epoch
    return None


def _case(name: str, reference: Case | None) -> Case:
    return reference if reference is not None else cases.get(name)


# --------------------------------------------------------------------------- the envelope
_SIGNS = np.array([-1.0, 1.0])


def _descend(ref: Trajectory, case: Case, twin: Trajectory | None = None):
    """The reference's run redone by its manual ``gradient`` and the update p - lr * grad
    (or the case's own loop, its ``stepper``), step by step: yields ``(step, loss, grads,
    params after the step)``.

    Given its unperturbed ``twin``, every parameter is moved after each step by u times its
    tensor's largest magnitude: a shadow of the reference that makes a rounding-level
    difference at every step, as a second implementation would. Each element is pushed the
    way it already deviates from the twin (random, from a fixed seed, where it does not):
    differences that keep one sign add up, as a second implementation's systematic rounding
    can, where random signs would partly cancel (see ``tolerances.envelope``)."""
    rng = np.random.default_rng(0)
    u = tolerances.UNIT_ROUNDOFF["float64"]
    hyper, lr = dict(ref.hyper), float(ref.hyper["lr"])
    p = {k: np.array(v[0], np.float64) for k, v in ref.params.items()}
    n = every(ref.steps, *ref.params.values())
    shapes = {k: np.shape(v) for k, v in p.items()}
    stepper = case.stepper(hyper) if case.stepper is not None else None
    if twin is not None:   # the start too: a step's own sensitivity counts from step 0
        for k in p:
            scale = np.abs(p[k]).max(initial=0.0)
            p[k] = p[k] + u * scale * _SIGNS[rng.integers(0, 2, size=shapes[k])]
    with np.errstate(all="ignore"):
        for step in range(ref.steps):
            if stepper is not None:   # (the shadow's gradients rounded as another's may be)
                loss, g, new = stepper(step, p, rng) if twin is not None else stepper(step, p)
            else:
                loss, g = case.gradient(p, hyper, sample_of(ref, step))
            g = {k: np.asarray(g[k], np.float64) for k in p}
            for k in p:
                p[k] = np.array(new[k], np.float64) if stepper is not None else p[k] - lr * g[k]
                if twin is not None:
                    scale = np.abs(p[k]).max(initial=0.0)
                    signs = np.sign(p[k] - twin.params[k][step + 1])
                    # (``rng.choice((-1.0, 1.0), size)``, the same draws at a fraction of its cost)
                    signs = np.where(signs == 0, _SIGNS[rng.integers(0, 2, size=shapes[k])], signs)
                    p[k] = p[k] + u * scale * signs
            yield step, loss, g, p
            if twin is not None and (step + 1) % n == 0:
                release(*twin.params.values())


def _train(ref: Trajectory, case: Case) -> Trajectory:
    """The reference's run redone by :func:`_descend`, recorded."""
    params = {k: buffer(v.shape, np.float64) for k, v in ref.params.items()}
    grads = {k: buffer(v.shape, np.float64) for k, v in ref.grads.items()}
    loss = np.empty(ref.steps)
    for k, v in params.items():
        v[0] = ref.params[k][0]
    touched = (*params.values(), *grads.values())
    n = every(ref.steps, *touched)
    for step, loss[step], g, p in _descend(ref, case):
        for k in p:
            grads[k][step] = g[k]
            params[k][step + 1] = p[k]
        if (step + 1) % n == 0:
            release(*touched)
    release(*touched)
    return dataclasses.replace(ref, framework="shadow", step_loss=loss, grads=grads, params=params)


def _shadow_difference(ref: Trajectory, case: Case, twin: Trajectory) -> np.ndarray:
    """Per step, the shadow's (:func:`_descend`) largest normwise difference from ``twin`` in
    loss, gradients and resulting parameters (causal scales of the twin), computed a range
    of steps at a time as the shadow makes them: the shadow itself is not kept."""
    n = every(ref.steps, *ref.params.values())
    loss = np.empty(min(n, ref.steps))
    params = {k: np.empty((len(loss), *v.shape[1:])) for k, v in ref.params.items()}
    grads = {k: np.empty((len(loss), *v.shape[1:])) for k, v in ref.grads.items()}
    d = np.zeros(ref.steps)
    for step, loss_k, g, p in _descend(ref, case, twin):
        i = step % n
        loss[i] = loss_k
        for k in p:
            grads[k][i] = g[k]
            params[k][i] = p[k]
        if i + 1 == n or step + 1 == ref.steps:
            a, b = step - i, step + 1
            d[a:b] = step_errors(loss[:i + 1], twin.step_loss[a:b], causal(twin, "loss")[a:b])
            for k in p:
                d[a:b] = np.maximum(d[a:b], step_errors(params[k][:i + 1], twin.params[k][a + 1:b + 1],
                                                        causal(twin, "param", k)[a:b]))
                d[a:b] = np.maximum(d[a:b], step_errors(grads[k][:i + 1], twin.grads[k][a:b],
                                                        causal(twin, "grad", k)[a:b]))
    return d


def envelope(ref: Trajectory, dtype: str = "float64", reference: Case | None = None) -> Envelope:
    """Measure the reference's sensitivity with a shadow run, and derive the envelope."""
    case = _case(ref.case, reference)
    # The shadow is measured against its unperturbed twin, the same descent by the manual
    # gradient, never against the reference's own record: the reference's training loop is
    # code under test too, and a mistake in it (a factor from some step on, an update
    # skipped or applied twice) would otherwise count as sensitivity and widen the very
    # envelope it is judged by (a 1e-7 factor from step 2000 of relu made it 5e-7, from
    # 1e-11). A loop that agrees with its backward costs one more descent here.
    twin = _train(ref, case)
    d = _shadow_difference(ref, case, twin)
    stop = diverges_at(ref)
    if stop is not None:   # beyond it the shadow's difference means nothing
        d[stop:] = d[stop - 1] if stop else 0.0
    d = np.where(np.isfinite(d), d, np.inf)
    per_step = tolerances.envelope(d, dtype, conditioning(ref, reference))
    beyond = np.flatnonzero(per_step > tolerances.PREDICTABLE)
    return Envelope(per_step, d, int(beyond[0]) if beyond.size else None, stop)


def conditioning(traj: Trajectory, reference: Case | None = None) -> np.ndarray:
    """Per step, how much that step amplifies rounding beyond the plain chain of operations
    (>= 1; ones where the case declares nothing): see :func:`tolerances.rtol`."""
    fn = _case(traj.case, reference).conditioning
    per_step = np.ones(traj.steps) if fn is None else np.asarray(fn(traj), np.float64)
    return np.maximum(np.broadcast_to(per_step, (traj.steps,)), 1.0)


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
        # Rounding-level differences exceed the plain bound only where the gradient itself is
        # ill-conditioned (a residual that cancels near a fit): measure that sensitivity there.
        allowed[k] = tolerances.local_rtol(other.dtype, _sensitivity(other, gradient, hyper, k, u,
                                                                     manual_loss, manual, case)) * c[k]
        if worst[k] <= allowed[k]:
            continue
        # Or the code's own rounding: the same code in extended precision (tolerances.py).
        precise = _precise_error(other, case, hyper, k)
        if precise is not None and precise <= allowed[k]:
            extended[k] = precise
            allowed[k] = worst[k]
            continue
        # Or autograd's: where the two frameworks part, neither can judge (tolerances.py).
        d = referee.disagreement(k)
        if d > tolerances.local_rtol(other.dtype) * c[k]:
            split = int(k)
        break   # a real mismatch, or the end of what can be judged: later steps are not needed
    if split is not None:
        steps = split
        errors = {n: e[:steps] for n, e in errors.items()}
        allowed, manual_loss = allowed[:steps], manual_loss[:steps]
        manual = {n: v[:steps] for n, v in manual.items()}
    manual["loss"] = manual_loss
    return Local(errors, allowed, manual, steps, extended, split, referee.steps.get(split, 0.0))


def _precise_error(other: Trajectory, case: Case, hyper, k: int) -> float | None:
    """Normwise error of ``other``'s autograd at step ``k`` against the case's manual backward
    run in extended precision at the same parameters (None: no such run)."""
    if case.gradient_precise is None:
        return None
    params = {n: other.params[n][k] for n in other.param_names}
    got = case.gradient_precise(params, hyper, sample_of(other, k))
    if got is None:
        return None
    loss, grads = got
    recorded = {n: other.grads[n][k] for n in other.param_names}
    worst = _apart(other, k, loss, grads, other.step_loss[k], recorded)
    return worst if math.isfinite(worst) else None


class _Referee:
    """Both frameworks' autograd, computed afresh at ``other``'s own parameters: how far two
    autograd implementations disagree there (see ``tolerances.py``). 0 where no other
    framework can be imported."""

    def __init__(self, other: Trajectory, case: Case) -> None:
        self.other, self.case, self.steps = other, case, {}
        self.problem = None

    def disagreement(self, k: int) -> float:
        from crosscheck import frameworks

        t = self.other
        names = [f for f in frameworks.FRAMEWORKS if f != t.framework]
        if not names:
            return 0.0
        if self.problem is None:
            self.problem = self.case.problem(**rerun_overrides(t))
        params = {n: t.params[n][k] for n in t.param_names}
        try:   # both afresh: what this run recorded is what is being judged, not a judge
            own, got = (frameworks.gradients(fw, self.problem, params, sample_of(t, k), t.dtype)
                        for fw in (t.framework, names[0]))
        except Exception:   # not importable, or this model's forward does not run there: no referee
            return 0.0
        d = _apart(t, k, got["loss"], got["params"], own["loss"], own["params"])
        d = d if math.isfinite(d) else 0.0
        if d > 0:
            self.steps[k] = d
        return d


def _explained(d: Divergence, other: Trajectory, loc: Local, case: Case) -> Divergence:
    """``d`` (a wrong manual gradient) with its worst elements and its likely mistake."""
    from crosscheck import mistakes

    k, name = d.step, d.parameter
    manual, auto = loc.manual[name][k], other.grads[name][k]
    batch, outputs = mistakes.sizes(other, k)
    explanation = mistakes.explain(
        f"grad[{name}]", manual, auto, tol=d.tol, batch=batch, outputs=outputs,
        previous=other.grads[name][k - 1] if k else None, zeros=exact_zeros(case, other, k),
        off_units=off_units(other, k, manual))
    rows = mistakes.worst_elements(manual, {other.framework: auto})
    return dataclasses.replace(d, explanation=explanation.as_dict(), elements=tuple(rows))


def off_units(t: Trajectory, k: int, gradient: Any) -> np.ndarray | None:
    """Per unit along ``gradient``'s last axis, whether it is off on some sample at step ``k``
    (from the first recorded ReLU mask with that many units); None where no mask fits."""
    for mask in t.masks.values():   # units along the last axis, as the gradient's
        at = np.asarray(mask[k])
        if at.ndim >= 1 and np.ndim(gradient) >= 1 and at.shape[-1] == np.shape(gradient)[-1]:
            return ~at.reshape(-1, at.shape[-1]).all(axis=0)
    return None


def exact_zeros(case: Case, t: Trajectory, k: int) -> tuple[str, ...]:
    """The recorded ReLU pre-activations that are exactly 0 somewhere at step ``k``."""
    from array_api_compat import array_namespace

    from crosscheck.problem import recording

    problem = case.problem(**rerun_overrides(t))
    if not problem.masks:
        return ()
    sample = sample_of(t, k)
    kw: dict = {}
    if problem.loop is not None:
        x = problem.loop.batch(problem.x, k)
        kw = problem.loop.kwargs(k, sample.state or problem.loop.state0, np.asarray)
    else:
        x = problem.x if sample is None else problem.sample(problem.x, sample)
    named: dict = {}
    with np.errstate(all="ignore"):
        problem.forward(array_namespace(x), {n: t.params[n][k] for n in t.param_names}, x,
                        tap=recording(named), **kw)
    return tuple(n for n in problem.masks if n in named and np.any(np.asarray(named[n]) == 0))


def _shaped(grads: Mapping[str, Any], name: str, shape: tuple, traj: Trajectory) -> np.ndarray:
    g = np.asarray(grads[name], np.float64)
    if g.shape != shape:
        raise ValueError(f"[{traj.case}] the manual gradient of {name} has shape {g.shape}, "
                         f"its parameter {shape}")
    return g


def _apart(t: Trajectory, k: int, loss_a: Any, grads_a: Mapping[str, Any], loss_b: Any,
           grads_b: Mapping[str, Any]) -> float:
    """How far two evaluations of step ``k``'s loss and gradients are apart, normwise, each
    quantity relative to ``t``'s causal scale at ``k`` (as the local errors are); NaN or inf
    where they cannot be compared."""
    with np.errstate(all="ignore"):
        apart = [abs(float(loss_a) - float(loss_b)) / scale_at(t, "loss", k)]
        for n in t.param_names:
            diff = np.abs(np.asarray(grads_a[n], np.float64) - np.asarray(grads_b[n], np.float64))
            apart.append(float(np.max(diff, initial=0.0)) / scale_at(t, n, k))
    return float(np.max(apart))   # (NaN anywhere is NaN: Python's max() would drop it)


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
    if case is not None and exact_zeros(case, other, k):
        return 0.0   # on a ReLU kink the gradient jumps under any nudge: nothing to measure
    sides = case.loss_at(at, hyper, sample)[1] if case is not None else ()
    worst = 0.0
    for flip in (1.0, -1.0):
        moved = nudged(at, u, flip)
        if case is not None and case.loss_at(moved, hyper, sample)[1] != sides:
            continue   # the nudge crossed a ReLU kink: a jump of the gradient, not its rounding
        loss, g = _manual_at(other, gradient, hyper, k, moved)
        worst = max(worst, _apart(other, k, loss, g, manual_loss[k], base))
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


def compare(ref: Trajectory, other: Trajectory, env: Envelope | None = None,
            reference: Case | None = None, loc: Local | None = None) -> Comparison:
    """Answer both questions for ``other`` against the reference run ``ref``.

    ``reference`` is the case whose ``gradient`` is the manual code under test (default:
    the registered case of that name); ``env`` its envelope and ``loc`` the local
    check of ``other``, if already computed (:func:`local`).
    """
    if env is None:
        env = envelope(ref, other.dtype, reference)
    case, fw = ref.case, other.framework
    candidates: list[tuple[int, int, Divergence]] = []

    # Local: the manual backward at the framework's own parameters.
    if loc is None:
        loc = local(other, ref, reference, conditioning(other, reference))
    local_first, local_first_steps = local_divergence(other, loc, _case(ref.case, reference))
    the_case = _case(ref.case, reference)
    upd = None
    if the_case.update is not None:
        from crosscheck import updates

        upd = updates.check(other, the_case, the_case.optimizer)
        local_first_steps = {**local_first_steps, **upd.first_steps}

    # Global: the trajectories, up to the horizon and the first non-finite step; and up to
    # the step where two autograd implementations part beyond rounding at the same
    # parameters (the frameworks' numerics, not the code under test, differ from there).
    d_ref, d_other = diverges_at(ref), diverges_at(other)
    end = ref.steps if env.horizon is None else env.horizon
    split = loc.split
    if split is not None:
        end = min(end, split)
    if d_other is not None and d_other != d_ref and _beyond_range(ref, d_other, other.dtype):
        end = min(end, d_other)   # a lower precision overflows sooner: agreement on a divergence
    elif d_ref != d_other:
        first_nonfinite = min(k for k in (d_ref, d_other) if k is not None)
        if first_nonfinite < end:
            candidates.append((first_nonfinite, 0, Divergence(
                case, fw, first_nonfinite, "divergence", None,
                math.inf if d_ref is None else d_ref, math.inf if d_other is None else d_other,
                math.inf, "global", env.at(first_nonfinite))))
        end = min(end, first_nonfinite)
    elif d_ref is not None:
        end = min(end, d_ref)     # both leave the numbers at the same step: agreement on that
    complete = end == ref.steps
    per: dict[tuple[str, str | None], float] = {}
    first_steps: dict[tuple[str, str | None], int] = {}
    allowed = env.per_step

    series: list[np.ndarray] = []   # per step: loss, gradients, parameters (the errors plot's)

    def check(quantity, name, got, want, steps, scale=None):
        """``got``/``want`` have a leading axis matched to update ``steps`` (an int array)."""
        if not len(steps):
            return
        err = step_errors(got, want, scale)
        if quantity in ("loss", "grad", "param"):
            series.append(err)
        per[(quantity, name)] = float(err.max(initial=0.0))
        bad = np.flatnonzero(err > allowed[np.minimum(steps, len(allowed) - 1)])
        if bad.size:
            i = int(bad[0])
            k = int(steps[i])
            first_steps[(quantity, name)] = k
            expected, value = _element(got[i], want[i])
            candidates.append((k, QUANTITY_ORDER.index(quantity), Divergence(
                case, fw, k, quantity, name, expected, value, float(err[i]), "global", env.at(k))))

    idx = np.arange(end)
    per_epoch = max(ref.steps // max(ref.epochs, 1), 1)
    epochs = end // per_epoch
    check("loss", None, other.step_loss[:end], ref.step_loss[:end], idx, causal(ref, "loss")[:end])
    # An epoch's loss is complete only at its last step (SGD sums it over the epoch).
    check("epoch_loss", None, other.epoch_loss[:epochs], ref.epoch_loss[:epochs],
          (np.arange(epochs) + 1) * per_epoch - 1)
    for name in ref.state:
        if name in other.state:
            check("state", name, other.state[name][1:end + 1], ref.state[name][1:end + 1], idx,
                  causal_scale(ref.state[name][1:])[:end])
    for name in ref.param_names:
        check("init", name, other.params[name][:1], ref.params[name][:1], np.zeros(1, int))
        check("grad", name, other.grads[name][:end], ref.grads[name][:end], idx,
              causal(ref, "grad", name)[:end])
        check("param", name, other.params[name][1:end + 1], ref.params[name][1:end + 1], idx,
              causal(ref, "param", name)[:end])
    if complete:
        last = np.full(1, ref.steps - 1)
        check("pred_train", None, other.pred_train[None], ref.pred_train[None], last)
        if ref.pred_test.size:
            check("pred_test", None, other.pred_test[None], ref.pred_test[None], last)

    mask_mismatches = 0
    for name in ref.masks if end else ():
        differ = np.zeros(end, bool)
        for s in ranges(end, other.masks[name], ref.masks[name]):
            diff = other.masks[name][s] != ref.masks[name][s]
            mask_mismatches += int(diff.sum())
            differ[s] = diff.reshape(len(differ[s]), -1).any(axis=1)
        steps = np.flatnonzero(differ)
        if steps.size:
            k = int(steps[0])
            first_steps[("mask", name)] = k
            candidates.append((k, QUANTITY_ORDER.index("mask"), Divergence(
                case, fw, k, "mask", name, float(ref.masks[name][k].ravel()[0]),
                float(other.masks[name][k].ravel()[0]), math.inf, "global", 0.0)))

    def worst(*quantities):
        return max((v for (q, _), v in per.items() if q in quantities), default=0.0)

    groups = {"loss": worst("loss", "epoch_loss"), "grads": worst("grad"),
              "params": worst("init", "param", "state"), "predictions": worst("pred_train", "pred_test")}
    global_first = min(candidates, key=lambda c: c[:2])[2] if candidates else None
    # The earlier step wins; at the same step a wrong gradient is the cause, not the effect.
    both = [d for d in (local_first, upd.first if upd else None, global_first) if d is not None]
    first = min(both, key=lambda d: (d.step, QUESTIONS.index(d.question))) if both else None
    return Comparison(
        case, fw, env.at(max(end - 1, 0)), groups, per, first_steps, mask_mismatches, first,
        env.horizon, local_first, global_first,
        local_max={k: float(v.max(initial=0.0)) for k, v in loc.errors.items()},
        local_tol=float(np.max(loc.allowed, initial=tolerances.local_rtol(other.dtype))),
        local_steps=loc.steps, local_first_steps=local_first_steps,
        diverges_at={"numpy": d_ref, fw: d_other}, autograd_split=split,
        update_first=upd.first if upd else None, update_max=upd.worst if upd else {},
        update_steps=upd.steps if upd else 0,
        autograd_disagreement=loc.split_disagreement, extended_steps=len(loc.extended),
        local_errors=np.max(list(loc.errors.values()), axis=0) if loc.errors else np.zeros(loc.steps),
        local_allowed=np.asarray(loc.allowed, np.float64),
        global_errors=np.max(series, axis=0) if series else np.zeros(end))
