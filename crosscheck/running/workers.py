"""The helper process beside this one: the reference's and the other frameworks' runs and
their checks (and the plots) go to it while this process runs the framework that
``runs_here``; both overlap on two cores. It is started fresh, ends with this process, and
says so in one line where it dies (:class:`HelperDied`).
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from crosscheck import frameworks as fw_registry
from crosscheck.running import interrupts, record
from crosscheck.running.environment import check as check_environment


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
    if fn.__module__ == "crosscheck.reporting.report" and fn.__name__ in ("_run", "_run_checked"):
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
        from crosscheck.declaring.model import register_file

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
