"""``crosscheck.check_gradient(model)``: the hand-written gradient at a few points, beside
each framework's autograd there, with no training run (as ``torch.autograd.gradcheck`` and
``jax.test_util.check_grads`` do), so a model needs no ``lr`` or ``epochs`` for it.

The points are the initial values and ``draws`` random draws around them (seeded). Each
point is judged exactly as a run's local question judges a step (:func:`compare.local`):
the same tolerance, the same probe of the gradient's sensitivity to rounding, the same
extended-precision and second-autograd checks; a wrong gradient gets the same likely
mistake (:mod:`crosscheck.mistakes`). A point where the loss or autograd is not a finite
number is said as such, and a check that compared no point never agrees.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from crosscheck import compare
from crosscheck import frameworks as fw_registry
from crosscheck.compare import Divergence
from crosscheck.model import Model, _numpy_xp, register
from crosscheck.record import Trajectory

#: A draw moves each parameter by a standard normal times this share of its tensor's
#: largest magnitude (1 for a tensor of zeros): far enough that the draws are other points
#: (other ReLU patterns), near enough to stay where the model is meant to run.
DRAW_SCALE = 0.5


@dataclasses.dataclass(frozen=True, repr=False)
class GradientResult:
    """What [`check_gradient()`][crosscheck.points.check_gradient] found: per framework, the
    manual gradient against its autograd at every point. ``agree``: at every point, in every framework."""

    model: str
    dtype: str
    points: tuple[str, ...]                    # "initial values", "draw 1", ...
    compared: dict[str, int]                   # framework -> points compared (finite there)
    worst: dict[str, float]                    # framework -> worst normwise error
    firsts: dict[str, Divergence | None]       # framework -> its first wrong point, or None

    @property
    def agree(self) -> bool:
        return all(self.firsts[fw] is None and self.compared[fw] == len(self.points) for fw in self.firsts)

    @property
    def first_divergence(self) -> Divergence | None:
        found = [d for d in self.firsts.values() if d is not None]
        return min(found, key=lambda d: d.step) if found else None

    @property
    def verdicts(self) -> dict[str, str]:
        """Framework -> its verdict line."""
        out = {}
        for fw, first in self.firsts.items():
            if first is not None:
                out[fw] = (f"MISMATCH (manual backward) at the {self.points[first.step]}: "
                           f"grad[{first.parameter}] manual {first.expected!r} vs {fw} autograd "
                           f"{first.got!r} (normwise rel. err {first.error:.3g} > tol {first.tol:.2g})")
            elif self.compared[fw] < len(self.points):
                out[fw] = (f"MISMATCH (nothing compared at the {self.points[self.compared[fw]]}): the loss "
                           f"or {fw}'s gradient is not a finite number there")
            else:
                out[fw] = (f"agree at all {len(self.points)} points (worst normwise error "
                           f"{self.worst[fw]:.2g})")
        return out

    def __repr__(self) -> str:
        return (f"GradientResult(model={self.model!r}, agree={self.agree}, points={len(self.points)}, "
                f"frameworks={list(self.firsts)}, dtype={self.dtype!r})")

    def __str__(self) -> str:
        lines = [f"{self.model}: the manual gradient at {len(self.points)} points "
                 f"({', '.join(self.points)}), {self.dtype}"]
        for fw, text in self.verdicts.items():
            lines.append(f"  {fw:<6} {text}")
            first = self.firsts[fw]
            if first is not None and first.explanation:
                lines.append(f"         likely: {first.explanation['text']}")
        return "\n".join(lines)


def _draws(start: dict[str, np.ndarray], draws: int, seed: int) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    points = [start]
    for _ in range(draws):
        points.append({k: v + DRAW_SCALE * (float(np.max(np.abs(v), initial=0.0)) or 1.0)
                       * rng.standard_normal(v.shape) for k, v in start.items()})
    return points


def check_gradient(model: Model, draws: int = 3, seed: int = 0,
                   frameworks: Sequence[str] | str = fw_registry.FRAMEWORKS,
                   dtype: str = "float64") -> GradientResult:
    """The manual gradient of ``model`` at its initial values and ``draws`` random points
    around them (``seed``), against each framework's autograd at the same points. A model
    trained per sample (``batch="sample"``) is checked on its first sample.

    Raises [`crosscheck.ModelError`][crosscheck.model.ModelError] for a model that cannot be
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
    points = _draws(dict(model.params0), draws, seed)
    names = ("initial values", *(f"draw {i}" for i in range(1, draws + 1)))
    problem = case.problem()
    sample = 0 if model.batch == "sample" else None
    compared, worst, firsts = {}, {}, {}
    for fw in frameworks:
        got = [fw_registry.gradients(fw, problem, p, sample, dtype) for p in points]
        traj = _as_steps(model, fw, dtype, points, got)
        loc = compare.local(traj, reference=case)
        compared[fw] = loc.steps
        worst[fw] = max((float(e.max(initial=0.0)) for e in loc.errors.values()), default=0.0)
        firsts[fw] = _first(traj, loc, case)
    return GradientResult(model.name, dtype, names, compared, worst, firsts)


def _as_steps(model: Model, fw: str, dtype: str, points: list[dict], got: list[dict]) -> Trajectory:
    """The points as the steps of a run's record (one epoch each), autograd's values as the
    framework's, so that :func:`compare.local` judges them as it judges a run."""
    n = len(points)
    params = {k: np.stack([np.asarray(p[k], dtype) for p in [*points, points[-1]]]) for k in points[0]}
    grads = {k: np.stack([np.asarray(g["params"][k], dtype) for g in got]) for k in points[0]}
    loss = np.array([g["loss"] for g in got], dtype)
    x = model.data[0] if model.batch == "full" else model.data[0][:1]
    pred = np.asarray(model.xp_forward(_numpy_xp(), points[0], x), np.float64)
    return Trajectory(case=model.name, framework=fw, dtype=dtype,
                      hyper={**model.hyper(), "points": n}, epoch_loss=loss.copy(), step_loss=loss,
                      grads=grads, params=params, pred_train=pred, pred_test=np.zeros(0))


def _first(traj: Trajectory, loc: compare.Local, case) -> Divergence | None:
    """The first point and parameter where the manual gradient is wrong, explained."""
    found = []
    for name, err in loc.errors.items():
        bad = np.flatnonzero(err > loc.allowed)
        if bad.size and name != "loss":
            k = int(bad[0])
            expected, value = compare._element(traj.grads[name][k], loc.manual[name][k])
            found.append((k, list(loc.errors).index(name), Divergence(
                traj.case, traj.framework, k, "grad", name, expected, value, float(err[k]), "local",
                float(loc.allowed[k]))))
    if not found:
        return None
    return compare._explained(min(found, key=lambda f: f[:2])[2], traj, loc, case)
