"""Step-by-step comparison of two trajectories of the same case.

Quantities: the per-epoch and per-step loss, every parameter's gradient at every step,
every parameter after every step (and at init), the predictions, and the ReLU masks.
Errors are normwise relative (see :mod:`crosscheck.tolerances`). NaN at the same
place in both runs counts as agreement, so a run that diverges identically agrees.
"""

from __future__ import annotations

import dataclasses
import inspect
import math

import numpy as np

from crosscheck import cases, tolerances
from crosscheck.record import Trajectory

#: Report groups: the keys of ``max_rel_err``.
GROUPS = ("loss", "grads", "params", "predictions")


@dataclasses.dataclass(frozen=True)
class Divergence:
    """The first place two runs disagree beyond the tolerance."""

    case: str
    framework: str
    step: int            # update step; params are "after step k", init is step 0
    quantity: str        # init, loss, grad, param, mask, epoch_loss, pred_train, pred_test
    parameter: str | None
    expected: float      # the reference's value (first disagreeing element)
    got: float
    error: float         # normwise relative error at that step

    def __str__(self) -> str:
        what = f"{self.quantity}[{self.parameter}]" if self.parameter else self.quantity
        return (f"[{self.case}/{self.framework}] first divergence at step {self.step}: {what} "
                f"reference {self.expected!r} vs {self.framework} {self.got!r} "
                f"(normwise rel. err {self.error:.3g})")

    def as_dict(self) -> dict:
        return {"step": self.step, "quantity": self.quantity, "parameter": self.parameter,
                "expected": _json_float(self.expected), "got": _json_float(self.got),
                "error": _json_float(self.error)}


@dataclasses.dataclass(frozen=True)
class Comparison:
    case: str
    framework: str
    tol: float
    max_rel_err: dict[str, float]                     # GROUPS -> worst error
    per_quantity: dict[tuple[str, str | None], float]  # (quantity, parameter) -> worst error
    first_steps: dict[tuple[str, str | None], int]     # (quantity, parameter) -> first bad step
    mask_mismatches: int
    first: Divergence | None
    horizon: int | None = None    # steps compared, when a chaotic run limits them (else all)

    @property
    def agree(self) -> bool:
        return self.first is None

    def blamed(self) -> set[tuple[str, str | None]]:
        """Every (quantity, parameter) that goes wrong at the first divergent step."""
        if self.first is None:
            return set()
        return {q for q, k in self.first_steps.items() if k == self.first.step}


def _json_float(v: float) -> float | str:
    return v if math.isfinite(v) else str(v)


def causal_scale(ref: np.ndarray) -> np.ndarray:
    """Per step, the largest finite ``|ref|`` seen up to and including that step.

    Shape ``(steps,)``. Judging step ``k`` against the scale reached so far keeps a
    decaying gradient measured against the size it had, while a later blow-up (a run
    that diverges) cannot hide an earlier error. A scale of 0 (exact zeros so far,
    e.g. a dead unit's gradient) becomes 1, so the error there is absolute.
    """
    ref = np.asarray(ref, np.float64)
    if ref.size == 0:
        return np.ones(len(ref))
    mag = np.where(np.isfinite(ref), np.abs(ref), 0.0).reshape(len(ref), -1).max(axis=1, initial=0.0)
    scale = np.maximum.accumulate(mag) if mag.size else mag
    return np.where(scale > 0, scale, 1.0)


def step_errors(got: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Normwise relative error per leading index (step): max |got - ref| / causal_scale.

    NaN in both at the same place is no error; NaN or inf on one side only is inf.
    """
    got = np.asarray(got, np.float64)
    ref = np.asarray(ref, np.float64)
    if got.shape != ref.shape:
        raise ValueError(f"shape {got.shape} vs reference {ref.shape}")
    if ref.ndim == 0:
        got, ref = got[None], ref[None]
    finite = np.isfinite(ref)
    scale = causal_scale(ref).reshape(-1, *([1] * (ref.ndim - 1)))
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(got - ref) / scale
    same_nonfinite = (~finite) & (~np.isfinite(got)) & (
        (np.isnan(ref) & np.isnan(got)) | (ref == got))
    diff = np.where(same_nonfinite, 0.0, np.where(np.isnan(diff), np.inf, diff))
    return diff.reshape(diff.shape[0], -1).max(axis=1) if diff.size else np.zeros(diff.shape[:1])


def _first_bad(err: np.ndarray, tol: float) -> int | None:
    bad = np.flatnonzero(err > tol)
    return int(bad[0]) if bad.size else None


def _element(got: np.ndarray, ref: np.ndarray, i: int) -> tuple[float, float]:
    g, r = np.asarray(got[i], np.float64).ravel(), np.asarray(ref[i], np.float64).ravel()
    j = int(np.argmax(np.where(np.isnan(g) == np.isnan(r), np.nan_to_num(np.abs(g - r)), np.inf)))
    return float(r[j]), float(g[j])


def compare(ref: Trajectory, other: Trajectory, tol: float | None = None,
            horizon: int | None = None) -> Comparison:
    """Compare ``other`` with the reference ``ref``, step by step.

    ``horizon`` limits the comparison to steps ``< horizon`` (see :func:`horizon`); the
    final predictions are then not compared, as they lie beyond it.
    """
    if horizon is not None:
        ref, other = _truncate(ref, horizon), _truncate(other, horizon)
    if tol is None:
        tol = tolerances.rtol(ref.steps, other.dtype, cases.get(ref.case).conditioning(ref))
    case, fw = ref.case, other.framework
    candidates: list[tuple[int, int, Divergence]] = []   # (step, order within step, divergence)
    per: dict[tuple[str, str | None], float] = {}
    first_steps: dict[tuple[str, str | None], int] = {}

    def check(quantity, name, got, want, step_of, order):
        err = step_errors(got, want)
        per[(quantity, name)] = float(err.max(initial=0.0))
        i = _first_bad(err, tol)
        if i is not None:
            first_steps[(quantity, name)] = step_of(i)
            expected, value = _element(got, want, i)
            candidates.append((step_of(i), order, Divergence(
                case, fw, step_of(i), quantity, name, expected, value, float(err[i]))))

    per_epoch = max(ref.steps // max(ref.epochs, 1), 1)
    check("loss", None, other.step_loss, ref.step_loss, lambda i: i, 1)
    # An epoch's loss is complete only at its last step (SGD sums it over the epoch).
    check("epoch_loss", None, other.epoch_loss, ref.epoch_loss, lambda i: (i + 1) * per_epoch - 1, 1)
    for order, name in enumerate(ref.param_names):
        check("init", name, other.params[name][:1], ref.params[name][:1], lambda i: 0, 0)
        check("grad", name, other.grads[name], ref.grads[name], lambda i: i, 2 + order)
        check("param", name, other.params[name][1:], ref.params[name][1:], lambda i: i, 100 + order)
    check("pred_train", None, other.pred_train[None], ref.pred_train[None], lambda i: ref.steps, 300)
    if ref.pred_test.size:
        check("pred_test", None, other.pred_test[None], ref.pred_test[None], lambda i: ref.steps, 301)

    mask_mismatches = 0
    for order, name in enumerate(ref.masks):
        diff = other.masks[name] != ref.masks[name]
        mask_mismatches += int(diff.sum())
        steps = np.flatnonzero(diff.reshape(diff.shape[0], -1).any(axis=1))
        if steps.size:
            k = int(steps[0])
            first_steps[("mask", name)] = k
            candidates.append((k, 200 + order, Divergence(
                case, fw, k, "mask", name, float(ref.masks[name][k].ravel()[0]),
                float(other.masks[name][k].ravel()[0]), math.inf)))

    def worst(*quantities):
        return max((v for (q, _), v in per.items() if q in quantities), default=0.0)

    groups = {"loss": worst("loss", "epoch_loss"), "grads": worst("grad"),
              "params": worst("init", "param"), "predictions": worst("pred_train", "pred_test")}
    first = min(candidates, key=lambda c: c[:2])[2] if candidates else None
    return Comparison(case, fw, tol, groups, per, first_steps, mask_mismatches, first, horizon)


def _truncate(t: Trajectory, steps: int) -> Trajectory:
    per_epoch = max(t.steps // max(t.epochs, 1), 1)
    epochs = steps // per_epoch
    return dataclasses.replace(
        t, step_loss=t.step_loss[:steps], epoch_loss=t.epoch_loss[:epochs],
        grads={k: v[:steps] for k, v in t.grads.items()},
        params={k: v[:steps + 1] for k, v in t.params.items()},
        masks={k: v[:steps] for k, v in t.masks.items()},
        pred_train=t.pred_train[:0], pred_test=t.pred_test[:0])


def horizon(ref: Trajectory, tol: float) -> int | None:
    """The predictability horizon of a run: the first step at which the reference itself,
    restarted from initial values moved by one ulp, differs by more than
    ``tol / OPS_PER_STEP`` (two implementations differ by up to OPS_PER_STEP ulps a step,
    so their difference grows like that many times the one-ulp sensitivity).

    Past it, rounding-level differences (which every pair of implementations has) are
    amplified by the dynamics beyond the tolerance, so a step-by-step comparison there
    cannot tell a wrong gradient from a correct one. None when the run never gets there
    or the case cannot be restarted from given values (only the class model can).
    """
    c = cases.get(ref.case)
    if "init" not in inspect.signature(c.ref.run).parameters:
        return None
    nudged = {k: np.nextafter(v[0], np.inf) for k, v in ref.params.items()}
    keys = ("lr", "epochs", "sizes", "activations")
    kw = {k: tuple(v) if isinstance(v, list) else v for k, v in ref.hyper.items() if k in keys}
    with np.errstate(all="ignore"):
        twin = c.ref.run(init=nudged, **kw)
    per_step = np.zeros(ref.steps)
    for name in ref.param_names:
        per_step = np.maximum(per_step, step_errors(twin.params[name][1:], ref.params[name][1:]))
        per_step = np.maximum(per_step, step_errors(twin.grads[name], ref.grads[name]))
    beyond = np.flatnonzero(per_step * tolerances.OPS_PER_STEP > tol)
    return int(beyond[0]) if beyond.size else None
