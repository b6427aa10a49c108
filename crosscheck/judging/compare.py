"""A framework's run against the reference, as separate questions.

* **Local: is the manual backward right at step k?** (:mod:`crosscheck.judging.local`)
* **Update: is the hand-written optimizer right at step k?** (:mod:`crosscheck.judging.updates`, for
  a model that declares ``update=``)
* **Global: do the trajectories agree?** Loss, gradients, parameters, carried state,
  predictions and ReLU masks step by step, within the :class:`~crosscheck.judging.envelope.Envelope`
  measured on the reference's own sensitivity (:mod:`crosscheck.judging.envelope`). Where that
  envelope reaches :data:`tolerances.PREDICTABLE`, the run is past its predictability horizon
  and only its qualitative behaviour is still comparable (done by the report).

Errors are normwise relative with a causal scale (:mod:`crosscheck.judging.metrics`). A run that
leaves the finite numbers is compared up to that step; all implementations leaving it at
the same step is agreement on a divergence.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from crosscheck import tolerances
from crosscheck.declaring.cases import Case
from crosscheck.judging.envelope import Envelope, conditioning, envelope
from crosscheck.judging.local import Local, local, local_divergence
from crosscheck.judging.metrics import (
    QUANTITY_ORDER,
    QUESTIONS,
    Divergence,
    _case,
    _element,
    causal,
    causal_scale,
    diverges_at,
    step_errors,
)
from crosscheck.running.record import Trajectory, ranges


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
    update_errors: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0))   # per step
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
        from crosscheck.judging import updates

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
    # A step's loss and gradients are evaluated where the trajectories have moved apart (the
    # envelope) by code that rounds differently at that very step: up to what the local
    # question accepted there, measured or not (beyond its steps, its last bound).
    evaluated = np.asarray(loc.allowed, np.float64)
    if len(evaluated) < len(allowed):
        last = evaluated[-1] if len(evaluated) else tolerances.local_rtol(other.dtype)
        evaluated = np.concatenate([evaluated, np.full(len(allowed) - len(evaluated), last)])
    at_step = allowed + evaluated[:len(allowed)]

    series: list[np.ndarray] = []   # per step: loss, gradients, parameters (the errors plot's)

    def check(quantity, name, got, want, steps, scale=None):
        """``got``/``want`` have a leading axis matched to update ``steps`` (an int array)."""
        if not len(steps):
            return
        err = step_errors(got, want, scale)
        if quantity in ("loss", "grad", "param"):
            series.append(err)
        per[(quantity, name)] = float(err.max(initial=0.0))
        bound = at_step if quantity in ("loss", "grad") else allowed
        bad = np.flatnonzero(err > bound[np.minimum(steps, len(bound) - 1)])
        if bad.size:
            i = int(bad[0])
            k = int(steps[i])
            first_steps[(quantity, name)] = k
            expected, value = _element(got[i], want[i])
            candidates.append((k, QUANTITY_ORDER.index(quantity), Divergence(
                case, fw, k, quantity, name, expected, value, float(err[i]), "global",
                float(bound[min(k, len(bound) - 1)]))))

    idx = np.arange(end)
    per_epoch = max(ref.steps // max(ref.epochs, 1), 1)
    epochs = end // per_epoch
    check("loss", None, other.step_loss[:end], ref.step_loss[:end], idx, causal(ref, "loss")[:end])
    # An epoch's loss is complete only at its last step (SGD sums it over the epoch).
    check("epoch_loss", None, other.epoch_loss[:epochs], ref.epoch_loss[:epochs],
          (np.arange(epochs) + 1) * per_epoch - 1)
    for name in ref.state:
        if name not in other.state:   # every implementation records the state it carries
            raise RuntimeError(f"[{case}/{fw}] the run recorded no state {name!r}; the reference carries it")
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
        if ref.pred_train.size:   # (a real loop records none: its noise or state has no one value)
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
              "params": worst("init", "param", "state")}
    if any(q in ("pred_train", "pred_test") for q, _ in per):   # a group that compared nothing is absent
        groups["predictions"] = worst("pred_train", "pred_test")
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
        update_steps=upd.steps if upd else 0, update_errors=upd.errors if upd else np.zeros(0),
        autograd_disagreement=loc.split_disagreement, extended_steps=len(loc.extended),
        local_errors=np.max(list(loc.errors.values()), axis=0) if loc.errors else np.zeros(loc.steps),
        local_allowed=np.asarray(loc.allowed, np.float64),
        global_errors=np.max(series, axis=0) if series else np.zeros(end))
