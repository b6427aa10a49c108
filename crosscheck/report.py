"""The main job: run every case in every implementation, compare, diagnose, report.

``crosscheck run`` (and ``make report``) call :func:`check_cases`, then print
:func:`table` and write :func:`to_json` and the plots. The JSON layout is a contract,
documented in docs/reference/json.md; keep it stable.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import os
import signal
import textwrap
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import numpy as np

from crosscheck import (
    cases,
    compare,
    diagnostics,
    interrupts,
    metrics,
    record,
    runner,
    tolerances,
    transcript,
)
from crosscheck import envelope as envelopes
from crosscheck import frameworks as fw_registry
from crosscheck import local as locals_
from crosscheck.environment import check as check_environment
from crosscheck.record import Trajectory
from crosscheck.versions import versions

#: What a run's own check measured beside it: the reference's envelope, a framework run's
#: local check (see :func:`run_trajectories`).
Check = compare.Envelope | compare.Local


@dataclasses.dataclass
class CaseResult:
    case: str
    trajs: dict[str, Trajectory]                      # numpy first, then the frameworks
    comparisons: dict[str, compare.Comparison]
    dynamics: dict[str, diagnostics.Dynamics]
    dead: dict[str, list[dict[str, Any]]]
    stability: diagnostics.Stability | None
    drift: dict[str, dict[str, Any]]                  # float32 only
    envelope: compare.Envelope | None = None
    transcript: dict[str, Any] | None = None          # document runs only: see check_transcript
    diagnosis: str = ""
    cannot: dict[str, str] = dataclasses.field(default_factory=dict)  # framework -> why not run

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


class Workers:
    """A helper process beside this one (``jobs >= 2``), or none (``jobs == 1``).

    The helper is started fresh (spawn), before torch or JAX is imported here, and takes
    work that does not need this process: the reference and JAX runs with their checks
    (:func:`run_trajectories`), then the plots.
    Two processes do not share an interpreter lock, so on two cores they overlap.

    The helper ends with this process: it starts with SIGINT blocked, so a Ctrl-C on the
    terminal (sent to the whole process group) is this process's alone to handle; leaving
    the ``with`` block on an exception or a signal kills it at once instead of waiting for
    its current run. On any exit, multiprocessing's resource tracker is stopped and
    waited for, so that no process outlives the run. Should this process be killed without
    unwinding (SIGKILL), the helper ends itself at once (:func:`_end_with_parent`), and the
    tracker, whose pipe no process then holds, with it.

    A helper that dies (the OOM killer, a ``kill``) fails what it had left to do with
    :class:`HelperDied`, which says so in one line.
    """

    def __init__(self, jobs: int = 2, sources: Sequence[str] = (), data: dict | None = None) -> None:
        """``sources``: files of users' models, loaded in the helper too (it starts fresh),
        with ``data`` (name -> x, y, init) as this process loaded them."""
        check_environment()   # a bad setting stops the run before the helper starts
        self.pool = None
        self._unfinished: dict[Future, str] = {}   # the helper's jobs, in order -> what each is
        self._watching = threading.Lock()
        self._death: HelperDied | None = None
        self._helper = None   # its process, once started
        if jobs > 1:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            self.pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                            initializer=_start_helper,
                                            initargs=(tuple(sources), data, record.spill_dir()))
            interrupts.on_abandon(self._end)
            # The first submit starts the helper now; a signal mask is inherited, and Python
            # leaves a blocked SIGINT blocked (as multiprocessing does for its resource tracker).
            # A signal meanwhile is raised once the helper has its start (interrupts.hold).
            try:
                with interrupts.hold():
                    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
                    try:
                        self._watched(self.pool.submit(int), "starting")
                        self._helper = next(iter(self.pool._processes.values()))   # started by submit
                    finally:
                        signal.pthread_sigmask(signal.SIG_SETMASK, old)
            except BaseException:
                self.__exit__(None)
                raise

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        if self.pool:
            return self._watched(self.pool.submit(fn, *args), _what(fn, args))
        f: Future = Future()
        try:
            f.set_result(fn(*args))
        except Exception as e:  # surfaces at .result(), as from the pool
            f.set_exception(e)
        return f

    def _watched(self, job: Future, what: str) -> Future:
        """``job``'s outcome, except that a helper that died is told as :class:`HelperDied`
        instead of the pool's ``BrokenProcessPool``, naming what it was doing: its earliest
        job not yet finished (it runs them one at a time, in order)."""
        told: Future = Future()
        with self._watching:
            self._unfinished[told] = what

        def settle(job: Future) -> None:
            error = None if job.cancelled() else job.exception()
            with self._watching:
                doing = next(iter(self._unfinished.values()))
                del self._unfinished[told]
                if isinstance(error, BrokenProcessPool):
                    if self._death is None:   # said once, of the job it died in
                        self._death = HelperDied(self._helper, doing)
                        self._death.__cause__ = error
                    error = self._death
            if job.cancelled():
                told.cancel()
            elif error is None:
                told.set_result(job.result())
            else:
                told.set_exception(error)

        job.add_done_callback(settle)
        return told

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc: object) -> None:
        interrupts.forget(self._end)
        self._end()

    def _end(self) -> None:
        """The helper killed, the pool shut down, the resource tracker stopped: once, from
        whichever thread gets here first (``cli._OnSignals``' watchdog may)."""
        pool, self.pool = self.pool, None
        if pool is None:
            return
        queues = (pool._call_queue, pool._result_queue)   # shutdown lets go of them
        # Interrupted or failed, the helper's work is no longer wanted; done, it has none
        # left, and its interpreter's shutdown (JAX's included) would only cost time.
        # (Python 3.14 has pool.kill_workers(); before it, the processes are reachable
        # only this way.)
        # A helper still being started (submit holds the lock) is in _processes only after.
        locked = pool._shutdown_lock.acquire(timeout=5)
        try:
            for process in list((pool._processes or {}).values()):
                process.kill()
        finally:
            if locked:
                pool._shutdown_lock.release()
        pool.shutdown(wait=True, cancel_futures=True)
        del pool
        _stop_resource_tracker(queues)


class HelperDied(ChildProcessError):
    """The helper process ended while it had work left: killed by a signal, or crashed. An
    environment error, as an ``OSError`` is; ``str()`` is one line saying how it ended and
    what it was doing."""

    def __init__(self, helper: Any, doing: str) -> None:
        code = None
        if helper is not None:
            helper.join(1)   # dead already (the pool saw it end), perhaps not yet reaped
            code = helper.exitcode
        how = ("" if code is None else
               f" (killed by {_signal_name(-code)})" if code < 0 else f" (exit code {code})")
        super().__init__(None, f"the helper process died{how} while {doing}")

    def __str__(self) -> str:
        return self.strerror


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _what(fn: Callable[..., Any], args: tuple) -> str:
    """What a job of the helper's is, in words: a run as the progress line names it
    (``relu [jax]``), anything else by its function."""
    if fn in (_run, _run_checked):
        case, impl = args[0][:2]
        return f"running {case} [{impl}]"
    return f"running {fn.__module__.removeprefix('crosscheck.')}.{fn.__qualname__}"


def _start_helper(sources: tuple[str, ...], data: dict | None, spill_dir: str) -> None:
    """The helper's start: its end tied to this process's (:func:`_end_with_parent`), long
    records spilled where this process reads them (and removes them), users' models loaded
    as this process loaded them."""
    threading.Thread(target=_end_with_parent, name="crosscheck-parent", daemon=True).start()
    record.use_spill_dir(spill_dir)
    if sources:
        from crosscheck.model import register_file

        for source in sources:
            register_file(source, data)


def _end_with_parent() -> None:
    """In the helper: wait for the parent process to die, then end at once.

    A parent killed without unwinding (SIGKILL: the OOM killer, a CI runner's hard timeout)
    never ends its helper, which would compute on, then block for ever on the pipe of its
    results, holding the resource tracker's pipe open too (the tracker exits only once every
    process holding it has). ``multiprocessing.parent_process()``'s sentinel is the end of a
    pipe that only the parent holds open, so it becomes readable the moment the parent is
    gone, however it died: no polling, on Linux and macOS alike (``prctl(PR_SET_PDEATHSIG)``
    is Linux only, and fires when the thread that started the child ends, not its process).
    """
    import multiprocessing

    parent = multiprocessing.parent_process()
    if parent is None:   # not started by multiprocessing: no parent to outlive
        return
    parent.join()
    os._exit(1)


def _stop_resource_tracker(queues: Sequence[Any] = ()) -> None:
    """End multiprocessing's resource tracker and wait for it. Left alone, it exits only
    once this process has exited, and so outlives it; the next pool starts a new one.

    The ``queues``' semaphores are released first (unlinked and unregistered, by their own
    finalizers): a queue releases them when collected, but a frame may still hold the pool
    (the main thread inside the helper's start when the watchdog ends the run), and a
    tracker stopped with semaphores registered warns of leaked ones on this run's stderr
    (seen once in a make test run)."""
    from multiprocessing import resource_tracker, util

    held = [getattr(q, name, None) for q in queues if q is not None for name in ("_rlock", "_wlock", "_sem")]
    locks = {id(lock) for lock in held if lock is not None}
    for finalizer in list(util._finalizer_registry.values()):
        if finalizer._weakref is not None and id(finalizer._weakref()) in locks:
            finalizer()
    gc.collect()   # any other semaphore of the pool's, released as its owner is collected
    resource_tracker._resource_tracker._stop()


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
        problems[case] = cases.get(case).problem(**overrides)
        cannot = cases.get(case).cannot_express
        if frameworks and all(fw in cannot for fw in frameworks):
            from crosscheck.model import ModelError

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


@contextlib.contextmanager
def _beside(workers: Workers | None, impl: str) -> Iterator[None]:
    """A run here while the helper process computes beside it, under its framework's
    ``beside_helper()`` (torch: one thread fewer than the cores, where its threads would
    otherwise wait on each other at every small operation: docs/development/benchmark.md)."""
    try:
        fw = fw_registry.REGISTRY.get(impl)
        if fw is None or not fw.runs_here or workers is None or not workers.pool:
            raise LookupError
        module = fw_registry.load(impl)   # imported as every framework is, a signal held till its end
    except Exception:   # (a framework that cannot be imported is the run's to report)
        yield
        return
    with module.beside_helper():
        yield


def _run_checked(task: tuple[str, str, str, dict[str, Any]],
                 progress: Callable[[int], None] | None = None) -> tuple[Trajectory, Check]:
    """A run and its own check: the reference's envelope (:func:`compare.envelope`), a
    framework run's local check (:func:`compare.local`)."""
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
    ``asked`` for, those whose optimizer cannot express the model's are said, not run."""
    frameworks = [k for k in trajs if k != "numpy"]
    ref = trajs["numpy"]
    env = (checks or {}).get((case, "numpy"))
    if env is None:
        progress(f"{case} [envelope]")
        env = envelopes.envelope(ref, dtype)
    comparisons = {}
    for fw in frameworks:
        progress(f"{case} [{fw}: local and global]")
        comparisons[fw] = compare.compare(ref, trajs[fw], env, loc=(checks or {}).get((case, fw)))
    dyn = {k: diagnostics.dynamics(t) for k, t in trajs.items()}
    dead = {k: diagnostics.dead_units(t) for k, t in trajs.items()}
    stab = None
    if dyn["numpy"].kind in ("oscillating", "stalled") and cases.get(case).curvature:
        progress(f"{case} [curvature]")
        stab = diagnostics.stability(ref, dyn["numpy"])
    drift = {fw: _drift(ref, trajs[fw]) for fw in frameworks} if dtype != "float64" else {}
    result = CaseResult(case, trajs, comparisons, dyn, dead, stab, drift, env, check_transcript(case, ref))
    result.diagnosis = diagnose(result)
    result.cannot = {fw: why for fw, why in cases.get(case).cannot_express.items() if fw in asked}
    return result


def error_series(r: CaseResult) -> dict[str, Any]:
    """What the errors plot draws: per step, each framework's local error and tolerance and
    its trajectories' difference, the envelope, and the predictability horizon."""
    return {"envelope": r.envelope.per_step if r.envelope is not None else np.zeros(0),
            "horizon": r.envelope.horizon if r.envelope is not None else None,
            "frameworks": {fw: {"local": c.local_errors, "allowed": c.local_allowed,
                                "global": c.global_errors} for fw, c in r.comparisons.items()}}


def check_transcript(case: str, ref: Trajectory) -> dict[str, Any] | None:
    """The run printed in the document's format against what the document printed; None
    for a model that has no document, or a run with other hyper-parameters than the
    document's (nothing was printed for it)."""
    if cases.get(case).printed_hyper() != dict(ref.hyper):
        return None
    diffs = transcript.compare(case, cases.get(case).transcript(ref))
    bad = transcript.mismatches(diffs)
    lines = len(transcript.printed(case).splitlines())
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


def _fmt(v: float) -> str:
    return f"{v:.4f}" if abs(v) >= 1e-3 else f"{v:.3g}"


def _stochastic(ref: Trajectory) -> str:
    """What makes a run's step losses move with its batches, in words ("" where nothing does)."""
    feed = ref.feed
    if feed is None:
        return ""
    parts = [f"mini-batches of {feed.batch}" if feed.per_epoch > 1 else "",
             "shuffled" if ref.hyper.get("shuffle") is not None else "", "noise" if feed.noise else ""]
    return ", ".join(p for p in parts if p)


def diagnose(r: CaseResult) -> str:
    """One line: what the run really does, from every step."""
    d, ref = r.dynamics["numpy"], r.reference
    per_epoch = ref.steps // ref.epochs
    if d.kind == "diverging":
        bad = metrics.diverges_at(ref)
        where = f"; non-finite from step {bad}" if bad is not None else ""
        line = f"diverging from step {d.start_step}{where}"
    elif d.kind == "stalled":
        zero = all(np.all(g[-per_epoch:] == 0) for g in ref.grads.values())
        line = (f"stalled from step {d.start_step} at loss {_fmt(d.final_loss)}: "
                "a fixed point, not the target" + ("; every gradient exactly 0" if zero else ""))
    elif d.kind == "oscillating" and d.period:
        values = " <-> ".join(_fmt(v) for v in d.cycle_losses)
        line = (f"period-{d.period} cycle {values} from epoch {d.start_step // per_epoch}" if d.settled
                else f"settling toward a period-{d.period} cycle {values}")
        printed = transcript.printed_losses(r.case, ref)
        if printed and len({e % d.period for e in printed}) == 1:
            line += " (every printed epoch falls on the same phase: the printout shows one value)"
    elif _stochastic(ref):
        e = ref.epoch_loss
        line = (f"epoch loss {_fmt(float(e[0]))} -> {_fmt(float(e[-1]))} over {len(e)} epochs "
                f"({_stochastic(ref)}: no dynamics read from a loss that moves with each batch)")
    elif d.kind == "oscillating":
        line = "oscillating without a clear period"
    else:
        how = ("monotone" if d.monotone else
               f"not monotone, swinging with period {d.period} and a shrinking swing" if d.period else
               "not monotone")
        line = f"converging, {how}; loss {_fmt(d.final_loss)} at the end"
    if r.stability is None and d.kind in ("oscillating", "stalled") and cases.get(r.case).curvature \
            and diagnostics.curvature_too_costly(ref):
        line += f"; curvature not computed (more than {diagnostics.MAX_CURVATURE_PARAMS} parameters)"
    if r.stability is not None:
        m = r.stability.points[-1]
        verdict = "> 2: unstable" if m["lr_times_lambda"] > 2 else "< 2"
        need = (f"GD needs lr < {r.stability.bound:.3g}" if np.isfinite(r.stability.bound)
                else "no curvature there, so no lr is too large")
        line += f"; lr*lambda_max = {m['lr_times_lambda']:.3g} at the nearest minimum ({verdict}; {need})"
    if r.envelope is not None and r.envelope.horizon is not None:
        line += (f"; predictable up to step {r.envelope.horizon}: there a 1-ulp change of the initial "
                 f"values has grown past {tolerances.PREDICTABLE:g} (chaotic)")
    for u in r.dead["numpy"]:
        if u["always"]:
            line += f"; {u['layer']} unit {u['name']} off on every sample at every step (never learns)"
        else:
            first = min(u["from_step"].values())
            line += f"; {u['layer']} unit {u['name']} off on sample(s) {u['samples']} from step {first}"
    return line


def to_json(results: Sequence[CaseResult], dtype: str, kinks: Sequence[Any] | None = None) -> dict[str, Any]:
    """The report's JSON contract (docs/reference/json.md). ``kinks``: the kink table's rows
    (:func:`crosscheck.kinks.table`) where the run computed it, else None."""
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
            "document": cases.get(r.case).document,
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
            "notes": list(cases.get(r.case).notes),
            "cannot_express": dict(r.cannot),
        }
    out["kinks"] = [dataclasses.asdict(row) for row in kinks] if kinks else None
    return out


def _finite_or_str(v: float) -> float | str:
    return float(v) if np.isfinite(v) else str(float(v))


def summary(results: Sequence[CaseResult]) -> str:
    """One line: how many pairs agree, how many do not, and the transcripts."""
    frameworks = sorted({fw for r in results for fw in r.comparisons})
    pairs = [(r, fw) for r in results for fw in r.comparisons]
    agree = sum(r.agree(fw) and not r.diverging for r, fw in pairs)
    diverging = sum(r.agree(fw) and r.diverging for r, fw in pairs)
    mismatch = len(pairs) - agree - diverging
    cannot = sum(len(r.cannot) for r in results)
    frameworks = sorted({*frameworks, *(fw for r in results for fw in r.cannot)})
    line = (f"{len(results)} case{'s' if len(results) != 1 else ''} x {len(frameworks)} "
            f"framework{'s' if len(frameworks) != 1 else ''}: {agree} agree, {mismatch} mismatch"
            + (f", {diverging} diverging alike" if diverging else "")
            + (f", {cannot} cannot express the optimizer" if cannot else ""))
    documents = [r for r in results if r.transcript is not None]
    if documents:
        matched = sum(r.transcript_ok for r in documents)
        line += f"; transcripts {matched}/{len(documents)} match the documents"
    return line


#: What the table's columns are, printed under it.
TABLE_LEGEND = ("local: the manual backward against autograd at the framework's own parameters, every "
                "step; loss/grads/params: the trajectories against the reference; envelope: what "
                "rounding alone may move them by (measured). All are normwise relative errors, the "
                "worst over the steps compared.")


def verdict(r: CaseResult, fw: str) -> str:
    c = r.comparisons[fw]
    split = ("" if c.autograd_split is None else
             f"; judged up to step {c.autograd_split}, where torch's and jax's autograd part by "
             f"{c.autograd_disagreement:.2g} at the same parameters, beyond rounding: neither can "
             "judge the manual backward from there")
    if r.agree(fw):
        if r.diverging:
            return (f"DIVERGING, the same in all (non-finite from step {r.envelope.diverges_at}{split})"
                    if r.envelope and r.envelope.diverges_at is not None else
                    f"DIVERGING, the same in all{split}")
        if split:
            return f"agree (manual gradients at steps 0-{c.local_steps - 1}{split})"
        if c.horizon is not None:
            return (f"agree (manual gradients at all {c.local_steps} steps; trajectories up to step "
                    f"{c.horizon}, the predictability horizon)")
        return "agree"
    if c.first is not None:
        what = {"local": "manual backward", "update": "manual update"}.get(c.first.question, "trajectories")
        return f"MISMATCH ({what}): {c.first}"
    if c.question == "nothing compared" and c.autograd_split == 0:
        return (f"MISMATCH (nothing compared): [{r.case}/{fw}] torch's and jax's autograd part at step 0 "
                f"by {c.autograd_disagreement:.2g} at the same parameters, beyond rounding (a kink, where "
                "each takes its own convention?): neither can judge the manual backward there")
    if c.question == "nothing compared":
        where = [k if k != "numpy" else "the reference" for k, s in c.diverges_at.items() if s == 0]
        where = " and ".join(where) + (" are" if len(where) > 1 else " is") if where else "the run is"
        return (f"MISMATCH (nothing compared): [{r.case}/{fw}] {where} not finite from step 0 "
                "(loss, gradients or parameters): no step's gradients could be compared")
    return f"MISMATCH (behaviour): {behaviour_difference(r, fw)}"


def behaviour_difference(r: CaseResult, fw: str) -> str:
    """What differs between the reference's run and ``fw``'s, qualitatively, in words."""
    def dyn(d: diagnostics.Dynamics) -> str:
        cycle = f", cycle {', '.join(_fmt(v) for v in d.cycle_losses)}" if d.cycle_losses else ""
        period = f" period {d.period}" if d.period else ""
        start = f" from step {d.start_step}" if d.start_step is not None else ""
        return f"{d.kind}{period}{cycle}{start}"

    a, b = dyn(r.dynamics["numpy"]), dyn(r.dynamics[fw])
    parts = [f"reference {a}, {fw} {b}"] if a != b else []
    dead_a, dead_b = ({u["name"]: u["from_step"] for u in r.dead[k]} for k in ("numpy", fw))
    if dead_a != dead_b:
        parts.append(f"dead units: reference {dead_a or 'none'}, {fw} {dead_b or 'none'}")
    return "; ".join(parts) or "different cycle values"


def row(r: CaseResult, fw: str) -> dict[str, str]:
    """One framework's numbers as the table and the page show them."""
    c = r.comparisons[fw]
    e = c.max_rel_err
    stepped = len(c.global_errors) > 0   # "-": no step compared, where 0 would read as agreement
    return {"local": f"{max(c.local_max.values(), default=0.0):.2e}" if c.local_steps else "-",
            **{k: f"{e[k]:.2e}" if stepped else "-" for k in ("loss", "grads", "params")},
            "envelope": f"{c.tol:.1e}"}


def next_command(r: CaseResult, fw: str) -> str | None:
    """The command that walks ``fw``'s first divergence line by line, where there is one
    and the case can be named on the command line (a document case, or a model from a file)."""
    c, case = r.comparisons[fw], cases.get(r.case)
    if c.first is None or c.first.quantity in ("divergence", "update"):
        return None   # (explain walks the backward; an update's mistake is said on its own line)
    if case.document is not None:
        spec = case.name
    elif case.origin is not None:
        spec = f"{case.origin}:{case.name}"
    else:
        return None
    def plain(v: Any) -> Any:   # a recorded tuple may come back as a list
        return list(v) if isinstance(v, (tuple, list)) else v

    default = {k: plain(v) for k, v in case.problem().hyper.items()}
    options = "".join(f" --{k} {','.join(map(str, v)) if isinstance(v, tuple) else v}"
                      for k, v in metrics.rerun_overrides(r.reference).items() if plain(v) != default.get(k))
    return f"crosscheck explain {spec} --step {c.first.step}{options}"


#: The terminal table's width: a row per case and framework, what was found wrapped under it.
WIDTH = 100


def _wrap(label: str, text: str) -> list[str]:
    """``text`` under a row, after ``label``, wrapped at :data:`WIDTH` (a command is never
    broken: it is copied as it stands)."""
    first = f"  {label} " if label else "  "
    if label == "next:":
        return [first + text]
    return textwrap.wrap(text, WIDTH, initial_indent=first, subsequent_indent=" " * len(first),
                         break_long_words=False, break_on_hyphens=False)


def _headline(r: CaseResult, fw: str) -> tuple[str, list[str]]:
    """:func:`verdict` as the table shows it: its short form on the row, the rest under it."""
    text = verdict(r, fw)
    if text.startswith("MISMATCH") and ": " in text:
        head, detail = text.split(": ", 1)
        label = "first:" if r.comparisons[fw].first is not None else "why:"
        return head, _wrap(label, detail.removeprefix(f"[{r.case}/{fw}] "))
    if text.endswith(")") and " (" in text:
        head, detail = text.split(" (", 1)
        return head, _wrap("", f"({detail}")
    return text, []


def table(results: Sequence[CaseResult], quiet: bool = False) -> str:
    """The verdicts, a row per case and framework with its verdict in short, and under it
    what was found (where it first fails, the likely mistake, the command that explains it),
    then the case's diagnosis; :data:`WIDTH` columns. ``quiet``: only the cases that fail
    ("" when none fails). What the columns mean is :data:`TABLE_LEGEND` (``run --help``)."""
    if quiet:
        results = [r for r in results if not r.ok]
        if not results:
            return ""
    w = max([14, *(len(r.case) for r in results)])    # the case column fits every name
    head = (f"{'case':<{w}} {'framework':<9} {'local':>8} {'loss':>8} {'grads':>8} {'params':>8} "
            f"{'envelope':>8}  verdict")
    lines = [head, "-" * min(len(head) + 20, WIDTH)]
    for r in results:
        for fw, c in r.comparisons.items():
            n = row(r, fw)
            short, details = _headline(r, fw)
            lines.append(f"{r.case:<{w}} {fw:<9} {n['local']:>8} {n['loss']:>8} {n['grads']:>8} "
                         f"{n['params']:>8} {n['envelope']:>8}  {short}")
            lines += details
            if c.first is not None and c.first.explanation:
                lines += _wrap("likely:", c.first.explanation["text"])
            if not r.agree(fw) and (command := next_command(r, fw)):
                lines += _wrap("next:", command)
            if fw in r.drift:
                dr = r.drift[fw]
                above = dr["first_step_above_1e-3"]
                when = f"above 1e-3 from step {above}" if above is not None else "never above 1e-3"
                lines += _wrap(f"{r.trajs[fw].dtype} drift:",
                               f"max rel. err {dr['max_rel_err']:.2e}, {when}; behaviour "
                               + ("survives (same dynamics, cycle, dead units)" if r.same_behaviour(fw)
                                  else "CHANGES"))
        for fw, why in r.cannot.items():
            dashes = " ".join(f"{'-':>8}" for _ in range(5))
            lines.append(f"{r.case:<{w}} {fw:<9} {dashes}  CANNOT EXPRESS")
            lines += _wrap("why:", f"{why} (not run: neither agree nor a mistake of the model)")
        lines += _wrap("->", r.diagnosis)
        for note in cases.get(r.case).notes:
            lines += _wrap("note:", note)
        if r.transcript is not None:
            t = r.transcript
            note = (f"transcript: matches the document's {t['lines']} printed lines"
                    + (f" ({t['rounding_only']} differ by BLAS rounding only)" if t["rounding_only"] else "")
                    if t["status"] == "match" else
                    f"transcript: MISMATCH with the document: {t['differences'][0]}")
            lines += _wrap("->", note)
    return "\n".join(lines)
