"""``crosscheck.check_gradient(model)``: the hand-written gradient at a few points, beside
each framework's autograd there, with no training run (as ``torch.autograd.gradcheck`` and
``jax.test_util.check_grads`` do), so a model needs no ``lr`` or ``epochs`` for it.

The points are the initial values and ``draws`` random draws around them (seeded). Each
point is judged exactly as a run's local question judges a step (:func:`crosscheck.judging.local.local`):
the same tolerance, the same probe of the gradient's sensitivity to rounding, the same
extended-precision and second-autograd checks; a wrong gradient gets the same likely
mistake (:mod:`crosscheck.judging.mistakes`). A model trained per sample is checked on every
sample at every point. A draw outside the loss's domain is drawn again
(``tolerances.REDRAWS``); where autograd is not a finite number, or the two frameworks'
autograds part, the check says nothing was compared from there, and never agrees.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from crosscheck import frameworks as fw_registry
from crosscheck import tolerances
from crosscheck.declaring.model import Model, _numpy_xp, register
from crosscheck.judging import local
from crosscheck.judging.metrics import Divergence
from crosscheck.running.record import Trajectory


@dataclasses.dataclass(frozen=True, repr=False)
class GradientResult:
    """What :func:`check_gradient` found: per framework, the manual gradient against its
    autograd at every point (on every sample, for a model trained per sample). ``agree``:
    at every point, in every framework."""

    model: str
    dtype: str
    points: tuple[str, ...]                    # "initial values", "draw 1", ...
    samples: int                               # samples per point (1: the whole batch)
    compared: dict[str, int]                   # framework -> point-samples compared
    worst: dict[str, float]                    # framework -> worst normwise error
    firsts: dict[str, Divergence | None]       # framework -> its first wrong point, or None
    splits: dict[str, int | None]              # framework -> where the two autograds part
    skipped: int = 0                           # draws redrawn: outside the loss's domain
    unit: str = "sample"                       # what each of ``samples`` is: "sample" or "batch"

    @property
    def units(self) -> str:
        return "batches" if self.unit == "batch" else "samples"

    @property
    def agree(self) -> bool:
        total = len(self.points) * self.samples
        return all(self.firsts[fw] is None and self.compared[fw] == total for fw in self.firsts)

    @property
    def first_divergence(self) -> Divergence | None:
        found = [d for d in self.firsts.values() if d is not None]
        return min(found, key=lambda d: d.step) if found else None

    def where(self, step: int) -> str:
        """``the draw 2`` (``, sample 3`` for a model trained per sample) of a step."""
        point = f"the {self.points[step // self.samples]}"
        return point + (f", {self.unit} {step % self.samples}" if self.samples > 1 else "")

    @property
    def verdicts(self) -> dict[str, str]:
        """Framework -> its verdict line."""
        out, total = {}, len(self.points) * self.samples
        for fw, first in self.firsts.items():
            if first is not None:
                what = f"grad[{first.parameter}]" if first.parameter else first.quantity
                out[fw] = (f"MISMATCH (manual backward) at {self.where(first.step)}: {what} manual "
                           f"{first.expected!r} vs {fw} autograd {first.got!r} (normwise rel. err "
                           f"{first.error:.3g} > tol {first.tol:.2g})")
            elif self.splits[fw] is not None:
                out[fw] = (f"MISMATCH (nothing compared from {self.where(self.splits[fw])}): the two "
                           "frameworks' autograds part there beyond rounding (a kink, where each "
                           "takes its own convention?), so neither can judge the manual gradient")
            elif self.compared[fw] < total:
                out[fw] = (f"MISMATCH (nothing compared from {self.where(self.compared[fw])}): {fw}'s "
                           "loss or gradient is not a finite number there, where the manual one is")
            else:
                out[fw] = (f"agree at all {len(self.points)} points"
                           + (f" on all {self.samples} {self.units}" if self.samples > 1 else "")
                           + f" (worst normwise error {self.worst[fw]:.2g})")
        return out

    def __repr__(self) -> str:
        return (f"GradientResult(model={self.model!r}, agree={self.agree}, points={len(self.points)}, "
                f"frameworks={list(self.firsts)}, dtype={self.dtype!r})")

    def __str__(self) -> str:
        on = f", each on all {self.samples} {self.units}" if self.samples > 1 else ""
        redrawn = f"; {self.skipped} draws redrawn: outside the loss's domain" if self.skipped else ""
        lines = [f"{self.model}: the manual gradient at {len(self.points)} points "
                 f"({', '.join(self.points)}{on}), {self.dtype}{redrawn}"]
        for fw, text in self.verdicts.items():
            lines.append(f"  {fw:<6} {text}")
            first = self.firsts[fw]
            if first is not None and first.explanation:
                lines.append(f"         likely: {first.likely}")
        return "\n".join(lines)


def _finite_everywhere(case, params: dict, samples: Sequence[int | None]) -> bool:
    """The loss and the manual gradient are finite numbers at ``params`` on every sample."""
    with np.errstate(all="ignore"):
        for sample in samples:
            loss, grads = case.gradient(params, {}, sample)
            if not (np.isfinite(loss) and all(np.all(np.isfinite(g)) for g in grads.values())):
                return False
    return True


def _draws(case, start: dict[str, np.ndarray], draws: int, seed: int,
           samples: Sequence[int | None]) -> tuple[list[dict[str, np.ndarray]], int]:
    """The start and ``draws`` points around it, each where the loss and the manual gradient
    are finite (a draw outside the loss's domain, a log of a negative, is drawn again, up to
    ``tolerances.REDRAWS`` times); and how many were drawn again."""
    rng = np.random.default_rng(seed)
    points, again = [start], 0
    for _ in range(draws):
        for _attempt in range(tolerances.REDRAWS + 1):
            point = {k: v + tolerances.DRAW_SCALE * (float(np.max(np.abs(v), initial=0.0)) or 1.0)
                     * rng.standard_normal(v.shape) for k, v in start.items()}
            if _finite_everywhere(case, point, samples):
                break
            again += 1
        points.append(point)   # (still outside after REDRAWS: judged, and said, as it is)
    return points, again


def check_gradient(model: Model, draws: int = 3, seed: int = 0,
                   frameworks: Sequence[str] | str = fw_registry.FRAMEWORKS,
                   dtype: str = "float64") -> GradientResult:
    """The manual gradient of ``model`` at its initial values and ``draws`` random points
    around them (``seed``), against each framework's autograd at the same points. A model
    trained per sample (``batch="sample"``) is checked on every sample at every point; one of
    mini-batches on every batch of its first epoch (with that step's noise, at the initial state).

    Raises [`crosscheck.ModelError`][crosscheck.declaring.model.ModelError] for a model that cannot be
    checked as declared."""
    from crosscheck.api import arguments

    if not isinstance(model, Model):
        raise TypeError(f"check_gradient() takes a crosscheck.Model, got {type(model).__name__}")
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 0:
        raise ValueError(f"draws must be a whole number, 0 or more, got {draws!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    frameworks, _ = arguments(frameworks, dtype, None, None)
    case = register(model)
    per_step = model.steps_per_epoch   # a real loop's first epoch: each batch, its noise, the initial state
    samples = list(range(per_step)) if model.batch == "sample" or per_step > 1 else [None]
    points, again = _draws(case, dict(model.params0), draws, seed, samples)
    names = ("initial values", *(f"draw {i}" for i in range(1, draws + 1)))
    problem = case.problem()
    compared, worst, firsts, splits = {}, {}, {}, {}
    for fw in frameworks:
        got = [fw_registry.gradients(fw, problem, p, sample, dtype) for p in points for sample in samples]
        traj = _as_steps(model, fw, dtype, points, len(samples), got)
        loc = local.local(traj, reference=case)
        compared[fw] = loc.steps
        worst[fw] = max((float(e.max(initial=0.0)) for e in loc.errors.values()), default=0.0)
        firsts[fw] = local.local_divergence(traj, loc, case)[0]
        splits[fw] = loc.split
    unit = "batch" if model.general and model.batch_size > 1 else "sample"
    return GradientResult(model.name, dtype, names, len(samples), compared, worst, firsts, splits, again,
                          unit)


def _as_steps(model: Model, fw: str, dtype: str, points: list[dict], samples: int,
              got: list[dict]) -> Trajectory:
    """The points as a run's record: a point an epoch, each of its samples a step (one step
    for the whole batch), autograd's values as the framework's, so that
    :func:`crosscheck.judging.local.local` judges them as it judges a run."""
    at = [p for p in points for _ in range(samples)]
    params = {k: np.stack([np.asarray(p[k], dtype) for p in [*at, at[-1]]]) for k in points[0]}
    grads = {k: np.stack([np.asarray(g["params"][k], dtype) for g in got]) for k in points[0]}
    loss = np.array([g["loss"] for g in got], dtype)
    if model.general:   # (a forward that takes noise= or state= has no plain prediction)
        pred = np.zeros(0)
    else:
        x = model.data[0] if model.batch == "full" else model.data[0][:1]
        pred = np.asarray(model.xp_forward(_numpy_xp(), points[0], x), np.float64)
    return Trajectory(case=model.name, framework=fw, dtype=dtype,
                      hyper={**model.hyper(), "points": len(points)},
                      epoch_loss=loss.reshape(len(points), samples).sum(axis=1), step_loss=loss,
                      grads=grads, params=params, pred_train=pred, pred_test=np.zeros(0))
