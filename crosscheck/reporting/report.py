"""The main job: run every case in every implementation, compare, diagnose, report.

``crosscheck run`` (and ``make report``) call :func:`check_cases`, then print
:func:`~crosscheck.reporting.text.table` and write :func:`to_json` and the plots. The JSON layout is
a contract, documented in docs/reference/json.md; keep it stable. Running beside the helper
process is :mod:`crosscheck.running.workers`; the verdicts in words are :mod:`crosscheck.reporting.text`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from crosscheck import frameworks as fw_registry
from crosscheck import tolerances
from crosscheck.declaring import cases
from crosscheck.declaring.cases import Case
from crosscheck.judging import compare, diagnostics, metrics, transcript
from crosscheck.judging import envelope as envelopes
from crosscheck.judging import local as locals_

# The report's parts, importable from here by their names as before (re-exported):
from crosscheck.reporting.text import (  # noqa: F401
    TABLE_LEGEND,
    WIDTH,
    _fmt,
    _headline,
    _stochastic,
    _wrap,
    behaviour_difference,
    diagnose,
    next_command,
    row,
    summary,
    table,
    verdict,
)
from crosscheck.running import runner
from crosscheck.running.environment import check as check_environment
from crosscheck.running.record import Trajectory
from crosscheck.running.versions import versions
from crosscheck.running.workers import (  # noqa: F401
    HelperDied,
    Workers,
    _beside,
    _end_with_parent,
    _signal_name,
    _start_helper,
    _stop_resource_tracker,
    _what,
)

#: What a run's own check measured beside it: the reference's envelope, a framework run's
#: local check (see :func:`run_trajectories`).
Check = envelopes.Envelope | locals_.Local


@dataclasses.dataclass
class CaseResult:
    case: str
    trajs: dict[str, Trajectory]                      # numpy first, then the frameworks
    comparisons: dict[str, compare.Comparison]
    dynamics: dict[str, diagnostics.Dynamics]
    dead: dict[str, list[dict[str, Any]]]
    stability: diagnostics.Stability | None
    drift: dict[str, dict[str, Any]]                  # float32 only
    envelope: envelopes.Envelope | None = None
    transcript: dict[str, Any] | None = None          # document runs only: see check_transcript
    diagnosis: str = ""
    cannot: dict[str, str] = dataclasses.field(default_factory=dict)  # framework -> why not run
    declared: Any = None                              # the Case judged (looked up once, by analyse)

    @property
    def reference(self) -> Trajectory:
        return self.trajs["numpy"]

    @property
    def diverging(self) -> bool:
        return self.dynamics["numpy"].kind == "diverging"

    def same_behaviour(self, fw: str) -> bool:
        """The framework's run does qualitatively what the reference's does: the same kind
        of dynamics and period, a divergence at the same step, the same cycle values (at
        ``tolerances.behaviour_rtol``) and the same dead units from the same steps. The
        step where a cycle locks in is compared in float64 only: float32 reaches its
        rounding floor, and so "locks in", a few epochs sooner."""
        a, b = self.dynamics["numpy"], self.dynamics[fw]
        dtype = self.trajs[fw].dtype
        tol = tolerances.behaviour_rtol(dtype, self.reference.steps)
        same = (a.kind == b.kind and a.period == b.period and self.dead["numpy"] == self.dead[fw]
                and len(a.cycle_losses) == len(b.cycle_losses)
                and all(abs(x - y) <= tol * abs(x)
                        for x, y in zip(a.cycle_losses, b.cycle_losses, strict=True)))
        if a.kind == "diverging" or dtype == "float64":
            same &= a.start_step == b.start_step
        return same

    def agree(self, fw: str) -> bool:
        """Within tolerance at every step, and doing the same thing; for a chaotic run, within
        tolerance up to its horizon (its later behaviour is then not reproducible at all)."""
        c = self.comparisons[fw]
        return c.agree and (c.horizon is not None or c.autograd_split is not None
                            or self.same_behaviour(fw))

    @property
    def transcript_ok(self) -> bool:
        return self.transcript is None or self.transcript["status"] != "MISMATCH"

    @property
    def ok(self) -> bool:
        """Every framework that could run the model agrees (a leg that cannot express the
        declared optimizer is neither: it is said, and at least one leg must have run)."""
        return (not self.diverging and self.transcript_ok and bool(self.comparisons)
                and all(self.agree(fw) for fw in self.comparisons))


def _run(task: tuple[str, str, str, dict[str, Any]],
         progress: Callable[[int], None] | None = None) -> Trajectory:
    case, impl, dtype, overrides = task
    return runner.run(case, impl, dtype=dtype, progress=progress, **overrides)


def _no_progress(what: str, steps: int | None = None) -> None:
    return None


def run_trajectories(names: Sequence[str], frameworks: Sequence[str], dtype: str = "float64",
                     workers: Workers | None = None, progress: Callable[..., Any] = _no_progress,
                     checks: dict[tuple[str, str], Check] | None = None,
                     **overrides: Any) -> Iterator[tuple[str, dict[str, Trajectory]]]:
    """Every case's trajectories, case by case in order.

    ``progress(what, steps)`` is told of each run as it starts here; it may return a
    callback ``advance(steps_done)`` for the run (a run in the helper reports at its end).

    With a helper process (:class:`Workers`) it runs the reference and JAX while this
    process runs torch; the runs are independent. A framework run is keyed by
    :func:`frameworks.model_key`; a second case with the same key (the same forward and
    loss on the same data and start) reuses the run instead of repeating it.

    Given ``checks``, each run gets its own check beside it, in the process that ran it
    (:func:`_run_checked`): a framework run its local check, the reference its envelope,
    stored under (case, implementation) for :func:`analyse`. A case's runs here come
    before its runs from the helper, which has had that time to finish them.
    """
    check_environment()   # before any run, not at the first array that reads one
    impls = ["numpy", *frameworks]
    plan: dict[str, dict[str, tuple]] = {}       # case -> impl -> run key
    owner: dict[tuple, str] = {}                  # run key -> the case that runs it
    problems = {}
    for case in names:
        declared = cases.get(case)
        problems[case] = declared.problem(**overrides)
        cannot = declared.cannot_express
        if frameworks and all(fw in cannot for fw in frameworks):
            from crosscheck.declaring.model import ModelError

            fw, able = frameworks[0], [f for f in fw_registry.FRAMEWORKS if f not in cannot]
            raise ModelError(f"[{case}] {', '.join(frameworks)} cannot run its optimizer ({fw}: "
                             f"{cannot[fw]}); check it with {', '.join(able)}")
        plan[case] = {impl: (impl, case) if impl == "numpy" else
                      (impl, dtype, fw_registry.model_key(problems[case])) for impl in impls
                      if impl not in cannot}
        for key in plan[case].values():
            owner.setdefault(key, case)

    run = _run if checks is None else _run_checked
    local = next((fw for fw in frameworks if fw_registry.REGISTRY[fw].runs_here), "numpy")
    futures = {}
    if workers is not None and workers.pool:   # queue the helper's whole share up front
        futures = {key: workers.submit(run, (case, key[0], dtype, overrides))
                   for key, case in owner.items() if key[0] != local}
    done: dict[tuple, Trajectory] = {}
    for case in names:
        todo = [key for key in dict.fromkeys(plan[case].values()) if key not in done]
        for key in sorted(todo, key=lambda k: k in futures):   # this process's runs first
            impl, steps = key[0], problems[case].steps
            advance = progress(f"{case} [{impl}]", steps)
            if key in futures:
                result = futures.pop(key).result()
                if advance is not None:
                    advance(steps)
            else:
                with _beside(workers, impl):
                    result = run((owner[key], impl, dtype, overrides), advance)
            if checks is not None:
                result, checks[owner[key], impl] = result
            done[key] = result
        trajs = {}
        for impl, key in plan[case].items():
            traj = done[key]
            if owner[key] != case:
                traj = dataclasses.replace(traj, case=case, hyper=dict(problems[case].hyper))
            trajs[impl] = traj
        yield case, trajs


def _run_checked(task: tuple[str, str, str, dict[str, Any]],
                 progress: Callable[[int], None] | None = None) -> tuple[Trajectory, Check]:
    """A run and its own check: the reference's envelope (:func:`crosscheck.judging.envelope.envelope`), a
    framework run's local check (:func:`crosscheck.judging.local.local`)."""
    _, impl, dtype, _ = task
    traj = _run(task, progress)
    if impl == "numpy":
        return traj, envelopes.envelope(traj, dtype)
    return traj, locals_.local(traj, cond=envelopes.conditioning(traj))


def check_cases(names: Sequence[str], frameworks: Sequence[str], dtype: str = "float64",
                workers: Workers | None = None, progress: Callable[..., Any] = _no_progress,
                **overrides: Any) -> Iterator[CaseResult]:
    """Every case run and judged (:func:`run_trajectories`, then :func:`analyse`), in order.

    Each run's own check (the reference's envelope, a framework run's local check) is made
    beside it, in the process that ran it (:func:`run_trajectories`): with a helper process
    and torch, the helper makes those of the reference and JAX while this process runs
    torch and checks it. The results are the same as in one process."""
    checks: dict[tuple[str, str], Check] = {}
    for name, trajs in run_trajectories(names, frameworks, dtype, workers=workers, checks=checks,
                                        progress=progress, **overrides):
        yield analyse(name, trajs, dtype, progress=progress, checks=checks, asked=frameworks)
        for key in [k for k in checks if k[0] == name]:   # (a long run's are large)
            del checks[key]


def analyse(case: str, trajs: dict[str, Trajectory], dtype: str = "float64",
            progress: Callable[[str], None] = lambda s: None,
            checks: dict[tuple[str, str], Check] | None = None,
            asked: Sequence[str] = fw_registry.FRAMEWORKS) -> CaseResult:
    """Compare every framework with the reference, and diagnose the run; ``checks`` holds
    what :func:`run_trajectories` already measured beside the runs, under (case,
    implementation). A run reused from another case has no entry under this one: its
    local check is made here, against this case's own manual backward. Of the frameworks
    ``asked`` for, those whose optimizer cannot express the model's are said, not run.

    The case is looked up by its name here, once: everything below receives the object."""
    declared = cases.get(case)
    frameworks = [k for k in trajs if k != "numpy"]
    ref = trajs["numpy"]
    env = (checks or {}).get((case, "numpy"))
    if env is None:
        progress(f"{case} [envelope]")
        env = envelopes.envelope(ref, dtype, declared)
    comparisons = {}
    for fw in frameworks:
        progress(f"{case} [{fw}: local and global]")
        comparisons[fw] = compare.compare(ref, trajs[fw], env, reference=declared,
                                          loc=(checks or {}).get((case, fw)))
    dyn = {k: diagnostics.dynamics(t) for k, t in trajs.items()}
    dead = {k: diagnostics.dead_units(t, declared) for k, t in trajs.items()}
    stab = None
    if dyn["numpy"].kind in ("oscillating", "stalled") and declared.curvature:
        progress(f"{case} [curvature]")
        stab = diagnostics.stability(ref, dyn["numpy"], declared)
    drift = {fw: _drift(ref, trajs[fw]) for fw in frameworks} if dtype != "float64" else {}
    result = CaseResult(case, trajs, comparisons, dyn, dead, stab, drift, env,
                        check_transcript(declared, ref),
                        declared=declared)
    result.diagnosis = diagnose(result)
    result.cannot = {fw: why for fw, why in declared.cannot_express.items() if fw in asked}
    return result


def error_series(r: CaseResult) -> dict[str, Any]:
    """What the errors plot draws: per step, each framework's local error and tolerance and
    its trajectories' difference, the envelope, and the predictability horizon."""
    return {"envelope": r.envelope.per_step if r.envelope is not None else np.zeros(0),
            "horizon": r.envelope.horizon if r.envelope is not None else None,
            "frameworks": {fw: {"local": c.local_errors, "allowed": c.local_allowed,
                                "global": c.global_errors, "update": c.update_errors}
                           for fw, c in r.comparisons.items()}}


def check_transcript(case: Case, ref: Trajectory) -> dict[str, Any] | None:
    """The run printed in the document's format against what the document printed; None
    for a model that has no document, or a run with other hyper-parameters than the
    document's (nothing was printed for it)."""
    if case.printed_hyper() != dict(ref.hyper):
        return None
    diffs = transcript.compare(case.name, case.transcript(ref))
    bad = transcript.mismatches(diffs)
    lines = len(transcript.printed(case.name).splitlines())
    status = "MISMATCH" if bad else "match"
    return {"status": status, "lines": lines, "rounding_only": len(diffs) - len(bad),
            "differences": [str(d) for d in diffs]}


def _drift(ref: Trajectory, other: Trajectory) -> dict[str, Any]:
    """How far a lower-precision run strays from the float64 reference, and when."""
    per_step = np.zeros(ref.steps)
    for name in ref.param_names:
        per_step = np.maximum(per_step, metrics.step_errors(other.params[name][1:], ref.params[name][1:]))
        per_step = np.maximum(per_step, metrics.step_errors(other.grads[name], ref.grads[name]))
    per_step = np.maximum(per_step, metrics.step_errors(other.step_loss, ref.step_loss))
    above = np.flatnonzero(per_step > tolerances.DRIFT)
    return {"max_rel_err": float(per_step.max(initial=0.0)),
            "first_step_above_1e-3": int(above[0]) if above.size else None}


def to_json(results: Sequence[CaseResult], dtype: str, kinks: Sequence[Any] | None = None) -> dict[str, Any]:
    """The report's JSON contract (docs/reference/json.md). ``kinks``: the kink table's rows
    (:func:`crosscheck.judging.kinks.table`) where the run computed it, else None."""
    out: dict[str, Any] = {"versions": versions(), "dtype": dtype, "cases": {}}
    for r in results:
        ref = r.reference
        frameworks = {}
        for fw, c in r.comparisons.items():
            frameworks[fw] = {
                "agree": r.agree(fw),
                "failed": c.question,
                "local": {
                    "agree": c.local_first is None and c.local_steps > 0,
                    "max_rel_err": c.local_max,
                    "tolerance": c.local_tol,
                    "steps": c.local_steps,
                    "extended_steps": c.extended_steps,   # confirmed in extended precision
                    "first_divergence": c.local_first.as_dict() if c.local_first else None,
                },
                "update": None if not c.update_steps else {
                    "agree": c.update_first is None,
                    "max_rel_err": c.update_max,
                    "steps": c.update_steps,
                    "first_divergence": c.update_first.as_dict() if c.update_first else None,
                },
                "max_rel_err": {k: float(v) for k, v in c.max_rel_err.items()},
                "tolerance": c.tol,
                "first_divergence": c.first.as_dict() if c.first else None,
                "horizon": c.horizon,
                "autograd_split": c.autograd_split,
                "diverges_at": c.diverges_at.get(fw),
                "same_dynamics": r.same_behaviour(fw),
                "dynamics": r.dynamics[fw].as_dict(),
                "mask_mismatches": c.mask_mismatches,
            }
            if fw in r.drift:
                frameworks[fw]["drift"] = r.drift[fw]
        d = r.dynamics["numpy"]
        env = r.envelope
        out["cases"][r.case] = {
            "document": r.declared.document,
            "hyper": dict(ref.hyper),
            "steps": ref.steps,
            "frameworks": frameworks,
            "dynamics": d.as_dict(),
            "dead_units": r.dead["numpy"],
            "stability": r.stability.as_dict() if r.stability else None,
            "envelope": None if env is None else {
                "horizon": env.horizon, "diverges_at": env.diverges_at,
                "final": _finite_or_str(env.at(ref.steps - 1))},
            "transcript": r.transcript,
            "diagnosis": r.diagnosis,
            "notes": list(r.declared.notes),
            "cannot_express": dict(r.cannot),
        }
    out["kinks"] = [dataclasses.asdict(k) for k in kinks] if kinks else None
    return out


def _finite_or_str(v: float) -> float | str:
    return float(v) if np.isfinite(v) else str(float(v))

