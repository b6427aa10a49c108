"""The trajectory record: the one data structure every implementation produces.

The NumPy reference, the PyTorch model and the JAX model each return a
:class:`Trajectory`; the comparison, the diagnostics, the report, the plots and
the regression baselines all consume it. Nothing downstream looks at a
framework object.

Indexing convention (one for every case):

* a *step* is one parameter update: an epoch for full-batch training, one
  sample for per-sample SGD;
* ``step_loss[k]`` and ``grads[name][k]`` are evaluated at ``params[name][k]``;
* ``params[name][k + 1]`` is the value after step ``k``, so ``params[name][0]``
  is the initial value and ``params[name][-1]`` the final one;
* ``epoch_loss[e]`` is the loss as the document defines it: the mean over the
  batch at the start of epoch ``e`` for full batch, the sum of the per-sample
  losses of epoch ``e`` for SGD;
* ``masks[name][k]`` is ``pre_activation > 0`` of the ReLU layer whose
  pre-activation the document calls ``name``, in the forward pass of step ``k``.
"""

from __future__ import annotations

import atexit
import copyreg
import dataclasses
import fcntl
import functools
import math
import mmap
import os
import shutil
import tempfile
import weakref
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from crosscheck.running import environment, interrupts

#: Prefixes of the flat array names used by :meth:`Trajectory.to_arrays`.
_FLAT = ("param.", "grad.", "mask.", "state.")


@dataclasses.dataclass(frozen=True, eq=False)
class Trajectory:
    """One training run, step by step.

    Attributes:
        case: the case or model name.
        framework: ``numpy`` (the reference), ``torch`` or ``jax``.
        dtype: the floating dtype the run computed in (``float64``/``float32``).
        hyper: the case's hyper-parameters (lr, epochs, seed, ...).
        epoch_loss: (E,) loss per epoch, as the document defines it.
        step_loss: (S,) loss of each update step.
        grads: name -> (S, *shape) gradient of each parameter at each step.
        params: name -> (S + 1, *shape) parameters before step 0 and after each step.
        pred_train: (m, ...) predictions on the training inputs, final parameters.
        pred_test: predictions on the document's test input; shape (0,) if none.
        masks: name -> (S, *shape) bool ReLU activation mask at each step.
        state: name -> (S + 1, *shape) a model's carried state (running statistics, a hidden
            state) before step 0 and after each step, as the run's own forward made it.
        feed: the batches and noise every step saw (:class:`crosscheck.declaring.loop.Feed`), for a
            model run by the general loop; None for the documents' loops.
    """

    case: str
    framework: str
    dtype: str
    hyper: Mapping[str, Any]
    epoch_loss: np.ndarray
    step_loss: np.ndarray
    grads: Mapping[str, np.ndarray]
    params: Mapping[str, np.ndarray]
    pred_train: np.ndarray
    pred_test: np.ndarray
    masks: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)
    state: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)
    feed: Any = None

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(self.params)

    @property
    def steps(self) -> int:
        return int(self.step_loss.shape[0])

    @property
    def epochs(self) -> int:
        return int(self.epoch_loss.shape[0])

    @property
    def initial(self) -> dict[str, np.ndarray]:
        return {k: v[0] for k, v in self.params.items()}

    @property
    def final(self) -> dict[str, np.ndarray]:
        return {k: v[-1] for k, v in self.params.items()}

    def check_dtype(self) -> None:
        """Fail loudly if any float array is not of the declared dtype."""
        want = np.dtype(self.dtype)
        for name, arr in self.to_arrays().items():
            if arr.dtype.kind == "f" and arr.dtype != want and not name.startswith("feed."):
                raise TypeError(
                    f"[{self.case}/{self.framework}] {name} is {arr.dtype}, "
                    f"but the run declares {want}: float64 was not really in effect"
                )

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Flat ``name -> array`` view, the layout of the npz baselines."""
        out: dict[str, np.ndarray] = {
            "epoch_loss": self.epoch_loss,
            "step_loss": self.step_loss,
            "pred_train": self.pred_train,
            "pred_test": self.pred_test,
        }
        for prefix, group in zip(_FLAT, (self.params, self.grads, self.masks, self.state), strict=True):
            out.update({prefix + k: v for k, v in group.items()})
        if self.feed is not None:
            out.update(self.feed.as_arrays())
        return out

    @classmethod
    def from_arrays(
        cls, arrays: Mapping[str, np.ndarray], *, case: str, framework: str,
        dtype: str, hyper: Mapping[str, Any],
    ) -> Trajectory:
        """Inverse of :meth:`to_arrays`, but for a real loop's feed (``feed.*``: the record of
        what its steps saw, not read back; a run redone makes it again from its model)."""
        groups: list[dict[str, np.ndarray]] = [{}, {}, {}, {}]
        for name, arr in arrays.items():
            for prefix, group in zip(_FLAT, groups, strict=True):
                if name.startswith(prefix):
                    group[name[len(prefix):]] = np.asarray(arr)
        params, grads, masks, state = groups
        return cls(case=case, framework=framework, dtype=dtype, hyper=dict(hyper),
                   epoch_loss=np.asarray(arrays["epoch_loss"]),
                   step_loss=np.asarray(arrays["step_loss"]),
                   grads=grads, params=params,
                   pred_train=np.asarray(arrays["pred_train"]),
                   pred_test=np.asarray(arrays["pred_test"]), masks=masks, state=state)


# --------------------------------------------------------------------------- long runs
# A run's record grows with steps x parameters: relu_class at --sizes 50,200,10 records
# 3000 steps of 12 210 parameters, 293 MB for its parameters and as much for its gradients,
# in each of three implementations. An array above environment.spill_bytes() (32 MiB, or
# CROSSCHECK_SPILL_BYTES) is therefore kept in a file (np.memmap: an ndarray to everything
# that reads it) in a folder of this run, and whatever walks through it (a training loop
# writing it, a comparison reading it) goes a bounded range of steps at a time
# (:func:`ranges`) and hands the pages back (:func:`release`): the data stays in the file and
# the page cache, not in the process. Memory then does not grow with steps x parameters x
# implementations; the disk does, and the folder is removed when the process that made it
# ends. A process killed without unwinding (SIGKILL, the OOM killer) cannot remove it: the
# next run's does (:func:`remove_stale`).

#: A walk through a long record reads or writes about this much of an array at a time.
CHUNK_BYTES = 8 << 20

#: A run's folder of spilled arrays is ``$TMPDIR/crosscheck-run-*``.
SPILL_PREFIX = "crosscheck-run-"
#: The file in a run's folder that the process that made it holds locked (``flock``) as long
#: as it lives: the kernel lets go of the lock however the process ends, SIGKILL included.
OWNER = ".owner"

_spill = {"dir": None, "owner": True}


def spill_dir() -> str:
    """This run's folder of spilled arrays, made on first use and removed at exit by the
    process that made it (a helper process is handed its parent's: :func:`use_spill_dir`);
    the folders of runs that died without removing theirs are removed first."""
    if _spill["dir"] is None:
        remove_stale()
        path = tempfile.mkdtemp(prefix=SPILL_PREFIX)
        _spill["lock"] = _hold(path)
        _spill["dir"] = path
        remove = functools.partial(shutil.rmtree, path, ignore_errors=True)
        atexit.register(remove)
        interrupts.on_abandon(remove)   # also where a signal ends the run without unwinding
    return _spill["dir"]


def _hold(folder: str) -> int:
    """``folder``'s :data:`OWNER` file, made and locked by this process for as long as it lives
    (the descriptor is never closed, and not inherited: os.open's are not)."""
    # Locked under another name, then renamed: a folder whose OWNER another run can see is
    # always locked while its run lives, never in the instant between creating and locking.
    making = os.path.join(folder, OWNER + ".new")
    fd = os.open(making, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    fcntl.flock(fd, fcntl.LOCK_EX)
    os.rename(making, os.path.join(folder, OWNER))
    return fd


def remove_stale(where: str | None = None) -> list[str]:
    """Remove the spill folders in ``where`` (the temporary folder) of runs whose process has
    died, and return them: those whose :data:`OWNER` file this process can lock. A live
    run's holds it locked; a folder without one (an older version's, or made by someone
    else) is left alone, as there is no telling whether its run lives."""
    removed = []
    try:
        entries = list(os.scandir(where or tempfile.gettempdir()))
    except OSError:
        return removed
    for entry in entries:
        try:
            if not entry.name.startswith(SPILL_PREFIX) or not entry.is_dir(follow_symlinks=False) \
                    or entry.stat(follow_symlinks=False).st_uid != os.getuid():
                continue
            fd = os.open(os.path.join(entry.path, OWNER), os.O_RDWR | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:   # held: its run is alive
            os.close(fd)
            continue
        try:
            shutil.rmtree(entry.path, ignore_errors=True)
            removed.append(entry.path)
        finally:
            os.close(fd)
    return removed


def use_spill_dir(path: str) -> None:
    """A helper process writes its spilled arrays where its parent reads and removes them."""
    _spill["dir"], _spill["owner"] = path, False


def buffer(shape: tuple[int, ...], dtype: Any, fill: Any = None) -> np.ndarray:
    """An uninitialised (or ``fill``-ed) array of ``shape``: in memory, or above
    :func:`environment.spill_bytes` in a file of :func:`spill_dir`, removed when the array is
    collected (a file handed to another process is its receiver's to remove)."""
    dtype = np.dtype(dtype)
    nbytes = math.prod(shape) * dtype.itemsize   # (np.prod costs 30 times as much: every step asks)
    if nbytes <= environment.spill_bytes() or nbytes == 0:
        return np.empty(shape, dtype) if fill is None else np.full(shape, fill, dtype)
    fd, path = tempfile.mkstemp(suffix=".bin", dir=spill_dir())
    os.close(fd)
    a = np.memmap(path, dtype, "w+", shape=tuple(shape))   # zeros: a sparse file
    if fill is not None and fill != 0:
        a[...] = fill
    _own(a, path)
    return a


def _own(a: np.memmap, path: str) -> None:
    if _spill["owner"]:
        weakref.finalize(a._mmap, _unlink, path)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _reopen(path: str, dtype: str, shape: tuple[int, ...]) -> np.memmap:
    """A spilled array arriving from another process (see :meth:`Trajectory.__reduce__`)."""
    a = np.memmap(path, np.dtype(dtype), "r+", shape=shape)
    _own(a, path)
    return a


def _spilled(a: Any) -> np.memmap | None:
    """``a`` if it is a whole spilled array (a file's mapping from its start), else None."""
    if isinstance(a, np.memmap) and a._mmap is not None and a.offset == 0 and a.filename \
            and a.flags.c_contiguous and a.nbytes == len(a._mmap):
        return a
    return None


def release(*arrays: Any) -> None:
    """Hand back the pages of spilled arrays (or arrays viewing them) that this process
    holds: their data stays in the file, and is read again if touched."""
    for a in arrays:
        m = getattr(a, "_mmap", None)
        if m is not None and not m.closed:
            m.madvise(mmap.MADV_DONTNEED)


def ranges(steps: int, *arrays: Any) -> Iterator[slice]:
    """Consecutive ranges of ``steps`` steps, each about :data:`CHUNK_BYTES` of the widest
    of ``arrays`` (whose leading axis is the step; one range where they are small), the
    pages of ``arrays`` handed back after each (:func:`release`)."""
    for s in _ranges(steps, arrays):
        yield s
        release(*arrays)


def every(steps: int, *arrays: Any) -> int:
    """How many steps of ``arrays`` make a range of :func:`ranges`."""
    return next(_ranges(steps, arrays), slice(0, 1)).stop


def _ranges(steps: int, arrays: tuple) -> Iterator[slice]:
    row = max((a.nbytes // max(len(a), 1) for a in arrays if np.ndim(a)), default=1)
    n = max(1, CHUNK_BYTES // max(row, 1))
    for a in range(0, steps, n):
        yield slice(a, min(a + n, steps))


def finite_rows(a: Any) -> np.ndarray:
    """Per step (leading index) of ``a``, whether all its values are finite; a long record a
    range of steps at a time."""
    out = np.empty(len(a), bool)
    for s in ranges(len(a), a):
        out[s] = np.isfinite(a[s]).reshape(s.stop - s.start, -1).all(axis=1)
    return out


class Recorder:
    """Preallocated buffers a training loop writes into, one step at a time.

    Writing a step is a handful of array assignments, so recording costs little
    next to the loop itself; :meth:`finish` hands the buffers over without copying.
    """

    def __init__(self, init: Mapping[str, Any], *, steps: int, epochs: int,
                 masks: Mapping[str, tuple[int, ...]] | None = None,
                 dtype: Any = np.float64) -> None:
        self.dtype = np.dtype(dtype)
        self.params = {k: buffer((steps + 1, *np.shape(v)), self.dtype) for k, v in init.items()}
        for k, v in init.items():
            self.params[k][0] = v
        self.grads = {k: buffer((steps, *np.shape(v)), self.dtype) for k, v in init.items()}
        self.masks = {k: buffer((steps, *shape), bool) for k, shape in (masks or {}).items()}
        self.step_loss = np.empty(steps, self.dtype)
        self.epoch_loss = np.empty(epochs, self.dtype)
        self.state: dict[str, np.ndarray] = {}
        self.k = 0
        spilled = [a for a in (*self.params.values(), *self.grads.values()) if _spilled(a) is not None]
        #: Steps between two :meth:`release` calls (0: nothing is spilled).
        self.release_every = every(steps, *spilled) if spilled else 0

    def step(self, loss: Any, grads: Mapping[str, Any], params: Mapping[str, Any],
             masks: Mapping[str, Any] | None = None) -> None:
        """Record one update: loss and grads at the old params, then the new params."""
        k = self.k
        self.step_loss[k] = loss
        for name, g in grads.items():
            self.grads[name][k] = g
        for name, p in params.items():
            self.params[name][k + 1] = p
        for name, m in (masks or {}).items():
            self.mask(name, k, m)
        self.k = k + 1
        if self.release_every and self.k % self.release_every == 0:
            self.release()

    def carried(self, k: int, state: Mapping[str, Any]) -> None:
        """Record the carried state before step ``k`` (``k = 0``: the initial state)."""
        for name, v in state.items():
            buf = self.state.get(name)
            if buf is None:
                kind = np.asarray(v).dtype
                buf = self.state[name] = np.zeros((self.step_loss.shape[0] + 1, *np.shape(v)),
                                                  self.dtype if kind.kind == "f" else kind)
            buf[k] = v

    def release(self) -> None:
        """Hand back the pages written so far of the spilled buffers (see :func:`release`)."""
        release(*self.params.values(), *self.grads.values(), *self.masks.values())

    def mask(self, name: str, k: int, m: Any) -> None:
        """Record step ``k``'s mask ``name``; its buffer is made at its first value, which
        brings the mask's shape."""
        buf = self.masks.get(name)
        if buf is None:
            buf = self.masks[name] = buffer((self.step_loss.shape[0], *np.shape(m)), bool, fill=False)
        m = np.asarray(m)
        if m.shape != buf.shape[1:] and m.ndim == buf.ndim - 1 and m.shape[1:] == buf.shape[2:]:
            # A smaller last mini-batch: its missing samples' rows read "on" (no unit is dead there).
            m = np.concatenate([m, np.ones((buf.shape[1] - m.shape[0], *m.shape[1:]), bool)])
        buf[k] = m

    def finish(self, *, case: str, framework: str, hyper: Mapping[str, Any],
               pred_train: Any, pred_test: Any = (), feed: Any = None) -> Trajectory:
        if self.k != self.step_loss.shape[0]:
            raise RuntimeError(f"[{case}/{framework}] recorded {self.k} of {self.step_loss.shape[0]} steps")
        self.release()
        return Trajectory(case=case, framework=framework, dtype=self.dtype.name, hyper=dict(hyper),
                          epoch_loss=self.epoch_loss, step_loss=self.step_loss,
                          grads=self.grads, params=self.params,
                          pred_train=np.asarray(pred_train, self.dtype),
                          pred_test=np.asarray(pred_test, self.dtype).reshape(-1),
                          masks=self.masks, state=self.state, feed=feed)


def _reduce_memmap(a: np.memmap):
    """How a spilled array pickles (to or from a helper process, in a trajectory or a local
    check): as its file, not its contents; the receiver maps the same file. A view into one
    (a range of its steps) is copied, as any array is."""
    if _spilled(a) is None:
        return np.array, (np.asarray(a),)
    a.flush()
    return _reopen, (a.filename, a.dtype.str, a.shape)


copyreg.pickle(np.memmap, _reduce_memmap)
