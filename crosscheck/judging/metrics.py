"""How far two runs are apart: normwise relative errors with a causal scale, where a run
leaves the finite numbers, what a step of a run sees, and :class:`Divergence`, the first
place two runs part (the record every question's answer is given in).

Errors are normwise relative with a causal scale (see :mod:`crosscheck.tolerances`): step
``k`` of a quantity is judged against the largest magnitude it has reached up to ``k``.
"""

from __future__ import annotations

import dataclasses
import math
import weakref
from typing import Any

import numpy as np

from crosscheck.declaring import cases
from crosscheck.declaring.cases import Case
from crosscheck.frameworks.registry import REGISTRY
from crosscheck.running.record import Trajectory, finite_rows, ranges

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
    explanation: dict | None = None   # local: the likely mistake (crosscheck.judging.mistakes.Explanation)
    elements: tuple = ()              # local: the worst elements, manual beside autograd
    explanations: tuple = ()          # local: each wrong gradient's own reading at this step

    @property
    def likely(self) -> str | None:
        """The likely-mistake line: the chosen reading, and where several gradients are wrong
        at the step, which one it was read on and what the others read."""
        if not self.explanation:
            return None
        text = self.explanation["text"]
        if len(self.explanations) > 1:
            read = self.explanation.get("parameter")
            where = f"read on grad[{read}]" if read else "read on the whole step"
            each = ", ".join(f"{e['parameter']} {e['kind']}" for e in self.explanations)
            text += (f" ({where}, the clearest of {len(self.explanations)} wrong gradients at this step: "
                     f"{each})")
        return text

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
                "explanations": list(self.explanations), "elements": list(self.elements)}


def _optimizer_library(framework: str) -> str:
    """The optimizer library that ran ``framework``'s update ("torch.optim", "optax")."""
    return REGISTRY[framework].optimizer_library if framework in REGISTRY else framework


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


def rerun_overrides(traj: Trajectory, case: Case) -> dict[str, Any]:
    """The keyword arguments that redo ``traj``'s run of ``case`` (its recorded
    hyper-parameters that the case takes back)."""
    keys = case.reruns
    return {k: tuple(v) if isinstance(v, list) else v for k, v in traj.hyper.items() if k in keys}


def sample_of(traj: Trajectory, step: int) -> Any:
    """What step ``step`` of ``traj`` sees besides its parameters. For a run of the general
    loop, an :class:`~crosscheck.declaring.loop.At`: the step, in the run's feed, and the run's own
    carried state at its start. Otherwise the sample a per-sample update step sees (None
    for full batch): a run of several steps per epoch is per-sample; so is a user's
    ``batch="sample"`` model of one sample."""
    if traj.feed is not None:
        from crosscheck.declaring.loop import At

        return At(step, {n: v[step] for n, v in traj.state.items()})
    per_epoch = traj.steps // max(traj.epochs, 1)
    if per_epoch > 1 or traj.hyper.get("batch") == "sample":
        return step % per_epoch
    return None


def _case(name: str, reference: Case | None) -> Case:
    return reference if reference is not None else cases.get(name)
