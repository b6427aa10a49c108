"""The environment variables crosscheck reads, each parsed where it is used.

Nothing is read at import, so importing crosscheck never fails on a bad value. A run checks
them all before it starts (:func:`check`): a bad value is the user's input, as a bad option
is, and stops the run in one line (:class:`BadEnvironmentVariable`, exit 2 on the command
line) before anything is computed or written.
"""

from __future__ import annotations

import functools
import os

#: An array of a run larger than this many bytes is kept in a file (``record.buffer``),
#: unless ``CROSSCHECK_SPILL_BYTES`` says otherwise.
SPILL_BYTES = 32 << 20


class BadEnvironmentVariable(ValueError):
    """An environment variable whose value crosscheck cannot use; ``str()`` is one line
    naming the variable, its value and what it takes."""


def spill_bytes() -> int:
    """``CROSSCHECK_SPILL_BYTES``: the size above which a run's array is kept in a file
    (0: every array of a run); :data:`SPILL_BYTES` where unset or empty. Read at each call
    (every buffer a run makes asks), parsed once per value."""
    return _spill_bytes(os.environ.get("CROSSCHECK_SPILL_BYTES", ""))


@functools.lru_cache(maxsize=4)
def _spill_bytes(text: str) -> int:
    if not text:
        return SPILL_BYTES
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise BadEnvironmentVariable(
            f"CROSSCHECK_SPILL_BYTES={text!r}: not a size in bytes (an integer, 0 or more; "
            "0 keeps every array of a run in a file)")
    return value


def jax_cache() -> str | None:
    """``CROSSCHECK_JAX_CACHE``: the folder JAX keeps compiled training loops in, or None
    for ``off``; ``~/.cache/backprop-crosscheck/jax`` (under ``XDG_CACHE_HOME`` if set)
    where unset or empty. A value naming something that is not a folder, or a path through
    one, is refused: JAX would only warn at each compilation and go on without its cache."""
    text = os.environ.get("CROSSCHECK_JAX_CACHE", "")
    if text == "off":
        return None
    if not text:
        return os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
                            "backprop-crosscheck", "jax")
    path = existing = os.path.abspath(text)
    while not os.path.exists(existing):   # made at first use: its nearest existing part
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing):
        what = "is" if existing == path else f"lies inside {existing}, which is"
        raise BadEnvironmentVariable(
            f"CROSSCHECK_JAX_CACHE={text!r}: {what} not a folder ('off' disables the cache; "
            "any other value is the folder to keep it in)")
    return text


def jobs() -> int | None:
    """``CROSSCHECK_JOBS``: the processes ``run`` uses where ``--jobs`` is not given (a
    positive integer: 1 runs everything in the one process, as a CI machine whose cores are
    busy with other jobs may want); None where unset or empty (the default: 2 where there
    are 2 cores)."""
    text = os.environ.get("CROSSCHECK_JOBS", "")
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise BadEnvironmentVariable(f"CROSSCHECK_JOBS={text!r}: not a number of processes (an integer, "
                                     "1 or more)")
    return value


def check() -> None:
    """Every variable above parsed; :class:`BadEnvironmentVariable` for the first bad one."""
    spill_bytes()
    jax_cache()
    jobs()
