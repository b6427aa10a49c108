"""The global question's yardstick: what a correct implementation may differ from the
reference by, step by step (:class:`Envelope`).

It is measured on the reference's own sensitivity, by a shadow run: the reference's loop
redone with every parameter moved by one ulp at the start and after every step (and, for a
real loop whose optimizer divides by its moments, every gradient moved by its own rounding),
against its unperturbed twin. Where the envelope reaches :data:`tolerances.PREDICTABLE`,
the run is past its predictability horizon.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from crosscheck import tolerances
from crosscheck.declaring.cases import Case
from crosscheck.judging.metrics import _case, causal, diverges_at, sample_of, step_errors
from crosscheck.running.record import Trajectory, buffer, every, release


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


# --------------------------------------------------------------------------- the envelope
_SIGNS = np.array([-1.0, 1.0])


def _descend(ref: Trajectory, case: Case, twin: Trajectory | None = None):
    """The reference's run redone by its manual ``gradient`` and the update p - lr * grad
    (or the case's own loop, its ``stepper``), step by step: yields ``(step, loss, grads,
    params after the step)``.

    Given its unperturbed ``twin``, every parameter is moved after each step by u times its
    tensor's largest magnitude and u of its own step: a shadow of the reference that makes a rounding-level
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
                before = p[k]
                p[k] = np.array(new[k], np.float64) if stepper is not None else p[k] - lr * g[k]
                if twin is not None:
                    scale = np.abs(p[k]).max(initial=0.0)
                    signs = np.sign(p[k] - twin.params[k][step + 1])
                    # (``rng.choice((-1.0, 1.0), size)``, the same draws at a fraction of its cost)
                    signs = np.where(signs == 0, _SIGNS[rng.integers(0, 2, size=shapes[k])], signs)
                    # u of the tensor's largest value, and of each element's own step: an
                    # optimizer's formula in another order rounds the step by that much
                    # (AdamW's step at lr 10 is larger than the parameters it moves).
                    p[k] = p[k] + u * (scale + np.abs(p[k] - before)) * signs
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
    # 1e-11). A document's loop that agrees with its backward costs one more descent here. A
    # user's model is its own twin: its reference run is this tool's loop (Model.run's
    # p - lr * g, or the general loop's stepper the shadow descends by), the same calls on
    # the same inputs; its backward and update are code under test, and the same in both.
    twin = ref if case.stepper is not None or case.document is None else _train(ref, case)
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
