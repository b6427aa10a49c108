"""Signals in the few places where an exception must not be raised, and what must still run
when a process is ended without unwinding.

``crosscheck``'s commands turn SIGINT and SIGTERM into an exception raised wherever the main
thread is (``cli._OnSignals``), so that every ``with`` and ``finally`` on the way out runs
and the helper process ends with the run. Two places cannot take it:

* an import that may bring a framework in (a framework's, a user's model file): importing
  torch runs Python code called from C++
  (``torch._C._c10d_init`` in ``torch.distributed``), and an exception raised there cannot
  unwind through it. The process aborts (``terminate called after throwing an instance of
  'pybind11::error_already_set'``, exit -6) and leaves the helper running, holding the
  run's output pipes. Measured: a SIGTERM about 0.3 s into ``crosscheck run``, about one
  time in six;
* starting the helper: interrupted while it writes the helper's start, the helper reads an
  end of file and prints a traceback.

Inside :func:`hold` the handler keeps the exception (:func:`keep`), and :func:`hold` raises
it when the block ends. A block that outlasts ``cli._OnSignals.HOLD_S`` (an import takes a
second or two) is not waited for: the watchdog ends the process, after running what was
registered with :func:`on_abandon` (the helper's end, which waits for a helper still
being started; the spilled records' folder), as leaving their blocks would have, for at
most ``cli._OnSignals.GRACE_S``.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

_state: dict = {"depth": 0, "kept": None}
_ends: list[Callable[[], None]] = []


def holding() -> bool:
    """Whether the main thread is inside :func:`hold` now."""
    return _state["depth"] > 0


def keep(exc: BaseException) -> None:
    """Raise ``exc`` when the outermost :func:`hold` ends (the first one kept wins)."""
    if _state["kept"] is None:
        _state["kept"] = exc


@contextlib.contextmanager
def hold() -> Iterator[None]:
    """A block a signal handler must not raise inside; what it kept is raised at its end,
    in place of any exception the block raised. Only the main thread's blocks count: that
    is where a handler runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _state["depth"] += 1
    try:
        yield
    finally:
        _state["depth"] -= 1
        kept = _state["kept"]
        if kept is not None and _state["depth"] == 0:
            _state["kept"] = None
            raise kept


def on_abandon(end: Callable[[], None]) -> None:
    """Run ``end`` should the process be ended without unwinding (:func:`abandon`), until
    :func:`forget`. ``end`` must be safe to call from another thread, and twice."""
    _ends.append(end)


def forget(end: Callable[[], None]) -> None:
    with contextlib.suppress(ValueError):
        _ends.remove(end)


def abandon() -> None:
    """Every registered end, the latest first; one that fails does not stop the others."""
    while _ends:
        end = _ends.pop()
        with contextlib.suppress(Exception):
            end()
