"""Second opinions on the manual gradients, independent of the frameworks' training runs.

* :func:`finite_differences`: central differences of the case's own loss (float64, no
  framework) for every parameter at a chosen step, against the manual gradient. Step and
  tolerance are derived in :mod:`crosscheck.tolerances`. Where a difference would cross a
  ReLU kink (a declared pre-activation changes sign between t - 2h and t + 2h, or, where a
  difference disagrees, the loss's one-sided slopes jump at t) the loss is not
  differentiable there and no finite difference is reported.
* :func:`chain`: the manual backward line by line at a chosen step (a document's lines as
  written; a user's model's hand-written intermediates, then its parameter gradients),
  each named value beside autograd's gradient with respect to the same tensor (torch
  ``retain_grad``, JAX vjp with respect to the intermediate), and the finite difference
  where one exists.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from typing import Any

import numpy as np

from crosscheck import tolerances
from crosscheck.declaring import cases
from crosscheck.frameworks.registry import FRAMEWORKS
from crosscheck.judging import local, metrics
from crosscheck.judging.metrics import rerun_overrides, sample_of
from crosscheck.running.record import Trajectory


@dataclasses.dataclass(frozen=True)
class FiniteDifference:
    parameter: str
    manual: np.ndarray
    fd: np.ndarray           # NaN where no finite difference exists (a kink in reach)
    tol: np.ndarray          # absolute tolerance per component
    error: np.ndarray        # |manual - fd|

    @property
    def agree(self) -> bool:
        ok = np.isnan(self.fd) | (self.error <= self.tol)
        return bool(np.all(ok))

    @property
    def exists(self) -> bool:
        return bool(np.any(~np.isnan(self.fd)))


def finite_differences(traj: Trajectory, step: int) -> list[FiniteDifference]:
    """Central differences of the loss at ``params[step]`` for every parameter component;
    none (NaN) where a kink lies within reach: a declared ReLU changes sides, or, where the
    difference disagrees with the manual gradient, the loss's one-sided slopes jump there
    (:func:`tolerances.fd_kink`)."""
    case = cases.get(traj.case)
    sample = sample_of(traj, step)
    params = {k: np.array(v[step], np.float64) for k, v in traj.params.items()}

    def loss(p):
        return case.loss_at(p, traj.hyper, sample)

    base, sides = loss(params)
    target_scale = float(np.max(np.abs(case.problem(**rerun_overrides(traj, case)).y), initial=0.0)) or 1.0
    out = []
    for name, value in params.items():
        flat = value.reshape(-1)
        manual = np.asarray(traj.grads[name][step], np.float64).reshape(-1)
        fd, tol = np.full(flat.shape, np.nan), np.full(flat.shape, np.nan)
        for i, t in enumerate(flat):
            h = tolerances.fd_step(float(t))

            def at(s, name=name, i=i):
                """The loss with this one component at ``s``."""
                q = {k: v.copy() for k, v in params.items()}
                q[name].reshape(-1)[i] = s
                return loss(q)

            vals, kink = {}, False
            for j in (-2, -1, 1, 2):
                val, side = at(t + j * h)
                kink |= side != sides
                vals[j] = float(val)
            if kink:
                continue
            d_h, d_2h = (vals[1] - vals[-1]) / (2 * h), (vals[2] - vals[-2]) / (4 * h)
            fd[i] = d_h
            tol[i] = tolerances.fd_tolerance(float(base), h, d_h, d_2h, target_scale)
            error = abs(manual[i] - d_h)
            if error > tol[i] and _kink_in_reach(at, float(t), h, float(base), vals, error):
                fd[i] = tol[i] = np.nan
        out.append(FiniteDifference(name, manual.reshape(value.shape), fd.reshape(value.shape),
                                    tol.reshape(value.shape), np.abs(manual - fd).reshape(value.shape)))
    return out


def _kink_in_reach(at, t: float, h: float, base: float, vals: dict[int, float], error: float) -> bool:
    """Whether the loss's one-sided slopes jump at ``t`` enough to explain a difference that
    disagrees by ``error`` (``at(s)``: the loss with the component at s; ``vals[k]``: its value
    at t + k h; ``base``: at t)."""
    def gap(s):
        lo, mid, hi = (float(at(s + j * h)[0]) for j in (-1, 0, 1))
        return abs(hi - 2 * mid + lo) / h

    here = abs(vals[1] - 2 * base + vals[-1]) / h
    probe = tolerances.FD_KINK_PROBE * h
    return tolerances.fd_kink(error, here, max(gap(t - probe), gap(t + probe)))


# --------------------------------------------------------------------------- the chain rule
# The documents write "dL_dO = ..." with spaces; the tape's "dL_dO=dL_dO" lines have none.
_ASSIGN = re.compile(r"^\s*(?:self\.)?(d\w+) = (.+?)\s*(#.*)?$")


@dataclasses.dataclass(frozen=True)
class Line:
    """One line of the document's manual backward, with every opinion on its value."""

    text: str
    name: str
    manual: np.ndarray
    autograd: dict[str, np.ndarray]     # framework -> autograd's value (empty: local factor)
    fd: FiniteDifference | None         # parameter gradients only
    tol: float
    kind: str                           # "gradient" (of the loss) or "local" (a local derivative)
    scale: float = 0.0                  # what errors are relative to (0: the line's own size)
    extended: bool = False              # confirmed in extended precision (its own rounding)

    def errors(self) -> dict[str, float]:
        scale = self.scale or float(np.max(np.abs(self.manual), initial=0.0)) or 1.0
        return {fw: float(np.max(np.abs(v - self.manual), initial=0.0)) / scale
                for fw, v in self.autograd.items()}

    @property
    def settled(self) -> bool:
        """At least two autograds agree with the manual value. A finite difference that
        disagrees is then a second opinion, not a verdict: two independent autograds outvote
        it (its loss may have a kink within reach that no one declared)."""
        return self.verdict == "agree" and len(self.autograd) >= 2

    @property
    def verdict(self) -> str:
        if self.kind == "local":
            return "local factor"
        bad = [fw for fw, e in self.errors().items() if not e <= self.tol]
        return "agree" if not bad or self.extended else f"MISMATCH ({', '.join(bad)})"


def backward_lines(case: str) -> list[tuple[str, str]]:
    """(source line, assigned name) of a document's manual backward, in the document's order."""
    source = cases.get(case).source
    fn, update = source.function, source.update
    lines = []
    started = False
    for raw in inspect.getsource(fn).splitlines():
        text = raw.strip()
        if text == update:
            break
        m = _ASSIGN.match(raw)
        if m and not text.startswith(("tape", "if ")):
            started = True
            lines.append((text, m[1]))
        elif started and text.startswith("#"):
            continue
    return lines


def chain(traj: Trajectory, step: int, frameworks: tuple[str, ...] = FRAMEWORKS) -> list[Line]:
    """The document's backward at ``step`` beside autograd and finite differences."""
    with np.errstate(all="ignore"):   # a diverging run's overflows are data, not warnings
        return _chain(traj, step, frameworks)


def _chain(traj: Trajectory, step: int, frameworks: tuple[str, ...]) -> list[Line]:
    from crosscheck import frameworks as fw_registry
    from crosscheck.reference._common import locals_at

    c = cases.get(traj.case)
    overrides = rerun_overrides(traj, c)
    problem = c.problem(**overrides)
    params = {k: v[step] for k, v in traj.params.items()}
    sample = sample_of(traj, step)
    grads = {fw: fw_registry.gradients(fw, problem, params, sample) for fw in frameworks}
    fds = {f.parameter: f for f in finite_differences(traj, step)}
    if c.source is None:   # a user's model: its named gradients, then its parameters'
        named = dict(c.intermediates(params, traj.hyper, sample)) if c.intermediates else {}
        manual = {**{f"dL/d{t}": v for t, v in named.items()},
                  **{f"dL/d{p}": traj.grads[p][step] for p in c.params}}
        doc_grads = {p: f"dL/d{p}" for p in c.params}
        doc_intermediates = {f"dL/d{t}": t for t in named}
        source_lines = [(f"{name} (hand-written)", name) for name in manual]
    else:
        fn, update = c.source.function, c.source.update
        manual = locals_at(fn.__code__, update, step, lambda: c.run_reference(**overrides))
        doc_grads, doc_intermediates = c.source.grads, c.source.intermediates
        source_lines = backward_lines(traj.case)
    by_doc_name = {g: p for p, g in doc_grads.items()}
    moved = _moved(c, traj, step, params, sample)
    precise = c.gradient_precise(params, traj.hyper, sample) if c.gradient_precise else None
    lines = []
    for text, name in source_lines:
        value = np.asarray(manual[name], np.float64)
        autograd: dict[str, Any] = {}
        fd, scale, sensitivity = None, 0.0, 0.0
        if name in by_doc_name:
            p = by_doc_name[name]
            autograd = {fw: g["params"][p] for fw, g in grads.items()}
            fd = fds[p]
            # As the run's local question: relative to the largest gradient so far, and within
            # what a u-relative move of the parameters moves this line by.
            scale = metrics.scale_at(traj, p, step)
            sensitivity = float(np.max(moved.get(p, 0.0), initial=0.0)) / scale
        elif name in doc_intermediates:
            t = doc_intermediates[name]
            autograd = {fw: g["intermediates"][t] for fw, g in grads.items()}
            scale = float(np.max(np.abs(value), initial=0.0)) or 1.0
            sensitivity = float(np.max(moved.get(f"dL/d{t}", 0.0), initial=0.0)) / scale
        kind = "gradient" if autograd else "local"
        tol = tolerances.local_rtol(traj.dtype, sensitivity)
        line = Line(text, name, value, autograd, fd, tol, kind, scale)
        if line.verdict != "agree" and precise is not None and name in by_doc_name:
            # the same code in extended precision (see tolerances.py): its own rounding?
            exact = np.asarray(precise[1][by_doc_name[name]], np.longdouble)
            ok = all(float(np.max(np.abs(v - exact), initial=0.0)) / scale <= tol for v in autograd.values())
            line = dataclasses.replace(line, extended=ok)
        lines.append(line)
    return lines


def _moved(c, traj: Trajectory, step: int, params, sample) -> dict[str, np.ndarray]:
    """How far each manual gradient (and a user model's hand-written intermediates) moves,
    elementwise, when every parameter moves by u relative (alternating signs, both ways)."""
    u = tolerances.UNIT_ROUNDOFF["float64"]
    base = dict(c.gradient(params, traj.hyper, sample)[1])
    if c.intermediates:
        base.update({f"dL/d{t}": v for t, v in c.intermediates(params, traj.hyper, sample).items()})
    worst: dict[str, np.ndarray] = {}
    for flip in (1.0, -1.0):
        moved = local.nudged(params, u, flip)
        got = dict(c.gradient(moved, traj.hyper, sample)[1])
        if c.intermediates:
            got.update({f"dL/d{t}": v for t, v in c.intermediates(moved, traj.hyper, sample).items()})
        for k, v in got.items():
            d = np.abs(np.asarray(v, np.float64) - np.asarray(base[k], np.float64))
            worst[k] = np.maximum(worst.get(k, 0.0), d)
    return worst
