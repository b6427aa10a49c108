"""What a training run really does, from its full per-step trajectory.

The documents print every 100th (or 10th) epoch; these diagnostics read every step.

* :func:`dynamics`: converging (monotone or not), oscillating (period and the values it
  cycles between), stalled (a true fixed point that is not the target) or diverging
  (NaN/inf or blow-up, and the step where it starts).
* :func:`stability`: for a full-batch case, the curvature of the loss (largest Hessian
  eigenvalue, by central differences of the document's *manual* gradient) at the points
  the run sits on and at the minimum nearest to them, against gradient descent's
  stability bound ``lr * lambda_max < 2``.
* :func:`dead_units`: which ReLU units are inactive on which samples, from which step.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import numpy as np

from crosscheck import tolerances
from crosscheck.declaring.cases import Case
from crosscheck.running.record import Trajectory, finite_rows

#: A fixed point whose loss is below this fraction of the initial loss has reached the target.
TARGET = 1e-8
#: A finite run whose loss ends this many times above where it started has blown up.
BLOWUP = 1e6
#: Longest period looked for.
MAX_PERIOD = 64
#: Most parameters the curvature diagnostic takes on: each Hessian costs 2 gradient calls
#: per parameter, and the nearest minimum up to 100 Hessians.
MAX_CURVATURE_PARAMS = 64


@dataclasses.dataclass(frozen=True)
class Dynamics:
    kind: str                       # converging | oscillating | stalled | diverging
    period: int | None = None
    cycle_losses: tuple[float, ...] = ()
    settled: bool = True            # oscillating: on the cycle (True) or settling toward it
    monotone: bool | None = None    # converging: loss never rises
    start_step: int | None = None   # diverging: where it starts; oscillating: where it locks in
    final_loss: float = float("nan")

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["cycle_losses"] = list(self.cycle_losses)
        d["final_loss"] = _num(self.final_loss)
        return d


def _num(v: float) -> float | str:
    return float(v) if np.isfinite(v) else str(float(v))


def _close(a: np.ndarray, b: np.ndarray, same: float) -> np.ndarray:
    """Elementwise "the same value" (see ``tolerances.SAME_VALUE``)."""
    return np.abs(a - b) <= same * np.maximum(np.abs(a), np.abs(b)) + 1e-300


def dynamics(traj: Trajectory) -> Dynamics:
    """Classify the run from its per-epoch loss (the document's loss) and its parameters."""
    loss = np.asarray(traj.epoch_loss, np.float64)
    per_epoch = traj.steps // traj.epochs
    finite = np.isfinite(loss) & np.all(
        [finite_rows(v[1:])[per_epoch - 1::per_epoch] for v in traj.params.values()], axis=0)
    if not finite.all():
        bad = int(np.argmin(finite))
        return Dynamics("diverging", start_step=_blowup_start(loss[: bad + 1]) * per_epoch,
                        final_loss=float(loss[-1]))
    if loss[-1] > BLOWUP * loss[0]:
        return Dynamics("diverging", start_step=_blowup_start(loss) * per_epoch,
                        final_loss=float(loss[-1]))

    same = tolerances.SAME_VALUE[traj.dtype]
    close = functools.partial(_close, same=same)
    # A rise below "the same value" is rounding noise where the loss has settled, not a rise.
    monotone = bool(np.all(np.diff(loss) <= same * np.abs(loss[1:])))
    final = float(loss[-1])
    tail = loss[-min(len(loss) // 2, 400):] if len(loss) >= 8 else loss
    if np.max(tail) <= TARGET * loss[0]:                     # at the target (its last bits may cycle)
        return Dynamics("converging", monotone=monotone, final_loss=final)
    if np.all(close(tail, tail[-1])):                        # a fixed point of the epoch map
        if _params_fixed(traj, len(tail), same):
            if _frozen(traj):    # some parameters get exactly 0 gradient: stuck (dead units)
                return Dynamics("stalled", start_step=_lock_in(loss, 1, same) * per_epoch, final_loss=final)
            return Dynamics("converging", monotone=monotone, final_loss=final)
    for p in range(2, MAX_PERIOD + 1):                       # exactly on a cycle
        if len(tail) > 2 * p and np.all(close(tail[p:], tail[:-p])) and not np.all(close(tail, tail[-1])):
            cycle = tuple(float(v) for v in loss[-p:])
            return Dynamics("oscillating", period=p, cycle_losses=cycle,
                            start_step=_lock_in(loss, p, same) * per_epoch, final_loss=final)
    d = np.diff(tail)
    noise = same * np.abs(tail[1:])
    if np.all(d <= noise):
        return Dynamics("converging", monotone=monotone, final_loss=final)
    s = np.where(np.abs(d) <= noise, 0.0, np.sign(d))
    for p in range(2, MAX_PERIOD + 1):                       # the up/down pattern repeats
        if len(s) > 2 * p and np.all(s[p:] == s[:-p]):
            amplitude = np.array([np.ptp(tail[i:i + p]) for i in range(len(tail) - p + 1)])
            swings = amplitude[::p]
            if len(swings) > 2 and np.all(np.diff(swings) > 0):   # a swing that grows: unstable
                return Dynamics("diverging", period=p, start_step=_growth_start(loss) * per_epoch,
                                final_loss=final)
            if _aitken(swings) > 0.1 * amplitude[-1]:  # the swing persists: a cycle
                return Dynamics("oscillating", period=p, cycle_losses=tuple(_cycle_limits(tail, p)),
                                settled=False, final_loss=final)
            return Dynamics("converging", period=p, monotone=False, final_loss=final)
    return Dynamics("oscillating", settled=False, final_loss=final)


def _aitken(seq: np.ndarray) -> float:
    """Where ``seq`` is heading: Aitken's delta-squared on three samples a third apart.

    Exact for a geometric approach to a limit; clamped at 0 (losses and swings are >= 0).
    """
    k = max((len(seq) - 1) // 2, 1)
    x0, x1, x2 = seq[-1 - 2 * k], seq[-1 - k], seq[-1]
    den = (x2 - x1) - (x1 - x0)
    return max(float(x2 - (x2 - x1) ** 2 / den) if den else float(x2), 0.0)


def _cycle_limits(tail: np.ndarray, p: int) -> list[float]:
    """Where each of the p interleaved subsequences of the loss is heading."""
    return [_aitken(tail[len(tail) - p + i::-p][::-1]) for i in range(p)]


def _params_fixed(traj: Trajectory, last_epochs: int, same: float) -> bool:
    """Parameters at the epoch boundaries of the last ``last_epochs`` epochs do not move."""
    per_epoch = traj.steps // traj.epochs
    idx = np.arange(traj.steps - per_epoch * last_epochs, traj.steps + 1, per_epoch)
    return all(np.all(_close(v[idx], v[-1], same)) for v in traj.params.values())


def _frozen(traj: Trajectory) -> bool:
    """The fixed point is stuck rather than a minimum reached: a recorded ReLU unit is off on
    every sample through the last epoch, or (a model without recorded units) every gradient
    is exactly 0 there. A fixed point where the units still work is a minimum: converging."""
    per_epoch = traj.steps // traj.epochs
    for mask in traj.masks.values():
        last = mask[-per_epoch:]
        last = last.reshape(-1, last.shape[-1]) if last.ndim >= 2 else last.reshape(-1, 1)
        if last.size and not np.all(last.any(axis=0)):
            return True
    grads = [g[-per_epoch:] for g in traj.grads.values() if g[0].size]
    return not traj.masks and bool(grads) and all(np.all(g == 0) for g in grads)


def _lock_in(loss: np.ndarray, p: int, same: float) -> int:
    """First epoch from which ``loss[t] == loss[t - p]`` holds to the end."""
    ok = _close(loss[p:], loss[:-p], same)
    bad = np.flatnonzero(~ok)
    return int(bad[-1] + 1 + p) if bad.size else p


def _growth_start(loss: np.ndarray) -> int:
    """Start of the final run of growing swings (|loss[t + 1] - loss[t]|) of an oscillation."""
    swing = np.abs(np.diff(loss))
    falls = np.flatnonzero(np.diff(swing) <= 0)
    return int(falls[-1] + 1) if falls.size else 0


def _blowup_start(loss: np.ndarray) -> int:
    """Start of the final run of rising losses that ends in the blow-up."""
    rising = np.diff(np.where(np.isfinite(loss), loss, np.inf)) > 0
    falls = np.flatnonzero(~rising)
    return int(falls[-1] + 1) if falls.size else 0


# ----------------------------------------------------------------------------- curvature
def _flat(params: dict[str, np.ndarray]) -> tuple[np.ndarray, list[tuple[str, tuple[int, ...]]]]:
    layout = [(k, np.shape(v)) for k, v in params.items()]
    return np.concatenate([np.ravel(v) for v in params.values()]).astype(np.float64), layout


def _unflat(vec: np.ndarray, layout) -> dict[str, np.ndarray]:
    out, i = {}, 0
    for k, shape in layout:
        n = int(np.prod(shape))
        out[k] = vec[i:i + n].reshape(shape)
        i += n
    return out


def curvature_too_costly(traj: Trajectory) -> bool:
    return sum(int(np.prod(v.shape[1:])) for v in traj.params.values()) > MAX_CURVATURE_PARAMS


def manual_gradient(case: Case, params: dict[str, np.ndarray]) -> np.ndarray:
    """The manual gradient of the batch loss at ``params``, flattened (lr 0, so that no
    update can leak into it)."""
    grads = case.gradient(params, {"lr": 0.0})[1]
    return np.concatenate([np.ravel(grads[k]) for k in params])


def hessian(case: Case, params: dict[str, np.ndarray], h: float = 1e-5) -> np.ndarray:
    """Central differences of the manual gradient; symmetrised. Error O(h^2) ~ 1e-10 relative."""
    x0, layout = _flat(params)
    cols = []
    for j in range(len(x0)):
        e = np.zeros_like(x0)
        e[j] = h
        cols.append((manual_gradient(case, _unflat(x0 + e, layout))
                     - manual_gradient(case, _unflat(x0 - e, layout))) / (2 * h))
    H = np.array(cols).T
    return (H + H.T) / 2


def nearest_minimum(case: Case, params: dict[str, np.ndarray], steps: int = 100) -> dict[str, np.ndarray]:
    """The minimum the run circles: damped Newton from ``params`` on the manual gradient.

    The step solves ``H d = -g`` by least squares, so in a valley of minima (a singular
    Hessian, as along ``W1 * W2 = 2``) it moves to the nearest point of the valley; it is
    halved until the gradient shrinks. Stops when the gradient is at rounding level.
    """
    x, layout = _flat(params)
    g = manual_gradient(case, params)
    tol = 1e-12 * (1 + float(np.max(np.abs(g))))
    for _ in range(steps):
        if np.max(np.abs(g)) < tol:
            break
        d = np.linalg.lstsq(hessian(case, _unflat(x, layout)), -g, rcond=1e-10)[0]
        for _ in range(30):
            g_new = manual_gradient(case, _unflat(x + d, layout))
            if np.linalg.norm(g_new) < np.linalg.norm(g):
                break
            d = d / 2
        x, g = x + d, g_new
    return _unflat(x, layout)


@dataclasses.dataclass(frozen=True)
class Stability:
    lr: float
    bound: float                           # 2 / lambda_max at the nearest minimum
    points: tuple[dict[str, Any], ...]     # per point: name, params, loss, lambda_max, lr*lambda

    def as_dict(self) -> dict[str, Any]:
        return {"lr": self.lr, "lr_bound_at_minimum": _num(self.bound), "points": list(self.points)}


def stability(traj: Trajectory, dyn: Dynamics, case: Case) -> Stability | None:
    """Curvature against the learning rate where a full-batch run sits (cycle or end), by
    ``case``'s manual gradient (the run's declared case)."""
    if not case.curvature or dyn.kind == "diverging" or curvature_too_costly(traj):
        return None
    lr = float(traj.hyper["lr"])
    period = dyn.period or 1
    where = {f"epoch {traj.epochs - period + i}":
             {k: v[traj.steps - period + i] for k, v in traj.params.items()} for i in range(period)}
    center = {k: np.mean([p[k] for p in where.values()], axis=0) for k in traj.params}
    where["nearest minimum"] = nearest_minimum(case, center)
    points = []
    for name, p in where.items():
        eig = np.linalg.eigvalsh(hessian(case, p))
        if name == "nearest minimum" and eig[0] < -1e-6 * np.max(np.abs(eig)):
            return None   # Newton found a saddle or a maximum: no minimum near the run to judge lr by
        lam = float(eig[-1])
        loss = float(case.loss_at(p, traj.hyper)[0])
        points.append({"at": name, "params": {k: np.ravel(v).tolist() for k, v in p.items()},
                       "loss": loss, "lambda_max": lam, "lr_times_lambda": lr * lam})
    lam = points[-1]["lambda_max"]   # 0 or below: flat or concave there, no step size is unstable
    return Stability(lr, 2 / lam if lam > 0 else float("inf"), tuple(points))


# ----------------------------------------------------------------------------- dead units
def mask_rows(traj: Trajectory) -> int:
    """Samples a step of a real loop's run sees (its mini-batch)."""
    return int(traj.feed.batch) if traj.feed is not None else 1


def _by_sample(traj: Trajectory, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A mini-batch run's masks by sample: (epochs, m, units) on/off, each sample at its visit
    in that epoch (its row of the step that saw it), and (epochs, m) the step of each visit."""
    feed, per = traj.feed, traj.feed.per_epoch
    epochs = len(mask) // per
    on = np.ones((epochs, feed.samples, int(np.prod(mask.shape[2:], dtype=int))), bool)
    visits = np.zeros((epochs, feed.samples), int)
    for k in range(epochs * per):
        index = feed.index(k)
        on[k // per, index] = np.asarray(mask[k][:len(index)]).reshape(len(index), -1)
        visits[k // per, index] = k
    return on, visits


def dead_units(traj: Trajectory, case: Case) -> list[dict[str, Any]]:
    """ReLU units inactive (pre-activation <= 0) on a sample from some step to the end.

    Each entry: layer, unit (0-based), name, samples (0-based indices), from_step (per
    sample: first step from which the unit stays off on it), always (off on every
    sample at every step: it never learns). Layers and unit numbers are the case's
    declared ``units``; a name it does not declare is its own layer.
    """
    from crosscheck.judging.metrics import diverges_at

    out = []
    m = traj.steps // traj.epochs          # samples per epoch when each step sees one sample
    per_sample = m > 1      # (with one sample, both readings below are the same)
    stop = diverges_at(traj)   # a non-finite activation is neither on nor off: stop before it
    visits = None
    if traj.feed is not None and mask_rows(traj) > 1:   # mini-batches: rows are the batch's samples
        per_sample, m = True, traj.feed.samples
    for name, mask in traj.masks.items():
        mask = mask[:stop] if stop is not None else mask
        if not len(mask):
            continue
        if traj.feed is not None and per_sample and mask_rows(traj) > 1:
            on, visits = _by_sample(traj, mask)
        elif per_sample:   # step k sees sample k % m: time is the epoch, within it the sample
            epochs = len(mask) // m
            on = mask[:epochs * m].reshape(epochs, m, -1)
        else:            # every step sees every sample
            on = mask.reshape(len(mask), mask.shape[1] if mask.ndim > 1 else 1, -1)
        layer, first_unit = case.units.get(name, (name, 0))
        scalar = mask[0].size == 1 and per_sample
        for u in range(on.shape[2]):
            samples, from_step = [], {}
            for i in range(on.shape[1]):
                off = ~on[:, i, u]
                if len(off) and off[-1]:
                    was_on = np.flatnonzero(~off)
                    first = int(was_on[-1] + 1) if was_on.size else 0
                    samples.append(i)
                    if visits is not None:   # the step of that epoch that saw sample i
                        from_step[str(i)] = int(visits[min(first, len(visits) - 1), i])
                    else:
                        from_step[str(i)] = first * m + i if per_sample else first
            if samples:
                out.append({"layer": layer, "unit": first_unit + u,
                            "name": name if scalar else f"{name}[:, {u}]",
                            "samples": samples, "from_step": from_step,
                            "always": bool(not on[:, :, u].any())})
    return out

