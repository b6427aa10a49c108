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

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np

#: Prefixes of the flat array names used by :meth:`Trajectory.to_arrays`.
_FLAT = ("param.", "grad.", "mask.")


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
            if arr.dtype.kind == "f" and arr.dtype != want:
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
        for prefix, group in zip(_FLAT, (self.params, self.grads, self.masks), strict=True):
            out.update({prefix + k: v for k, v in group.items()})
        return out

    @classmethod
    def from_arrays(
        cls, arrays: Mapping[str, np.ndarray], *, case: str, framework: str,
        dtype: str, hyper: Mapping[str, Any],
    ) -> Trajectory:
        """Inverse of :meth:`to_arrays`."""
        groups: list[dict[str, np.ndarray]] = [{}, {}, {}]
        for name, arr in arrays.items():
            for prefix, group in zip(_FLAT, groups, strict=True):
                if name.startswith(prefix):
                    group[name[len(prefix):]] = np.asarray(arr)
        params, grads, masks = groups
        return cls(case=case, framework=framework, dtype=dtype, hyper=dict(hyper),
                   epoch_loss=np.asarray(arrays["epoch_loss"]),
                   step_loss=np.asarray(arrays["step_loss"]),
                   grads=grads, params=params,
                   pred_train=np.asarray(arrays["pred_train"]),
                   pred_test=np.asarray(arrays["pred_test"]), masks=masks)


class Recorder:
    """Preallocated buffers a training loop writes into, one step at a time.

    Writing a step is a handful of array assignments, so recording costs little
    next to the loop itself; :meth:`finish` hands the buffers over without copying.
    """

    def __init__(self, init: Mapping[str, Any], *, steps: int, epochs: int,
                 masks: Mapping[str, tuple[int, ...]] | None = None,
                 dtype: Any = np.float64) -> None:
        self.dtype = np.dtype(dtype)
        self.params = {k: np.empty((steps + 1, *np.shape(v)), self.dtype) for k, v in init.items()}
        for k, v in init.items():
            self.params[k][0] = v
        self.grads = {k: np.empty((steps, *np.shape(v)), self.dtype) for k, v in init.items()}
        self.masks = {k: np.empty((steps, *shape), bool) for k, shape in (masks or {}).items()}
        self.step_loss = np.empty(steps, self.dtype)
        self.epoch_loss = np.empty(epochs, self.dtype)
        self.k = 0

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

    def mask(self, name: str, k: int, m: Any) -> None:
        """Record step ``k``'s mask ``name``; its buffer is made at its first value, which
        brings the mask's shape."""
        buf = self.masks.get(name)
        if buf is None:
            buf = self.masks[name] = np.zeros((self.step_loss.shape[0], *np.shape(m)), bool)
        buf[k] = m

    def finish(self, *, case: str, framework: str, hyper: Mapping[str, Any],
               pred_train: Any, pred_test: Any = ()) -> Trajectory:
        if self.k != self.step_loss.shape[0]:
            raise RuntimeError(f"[{case}/{framework}] recorded {self.k} of {self.step_loss.shape[0]} steps")
        return Trajectory(case=case, framework=framework, dtype=self.dtype.name, hyper=dict(hyper),
                          epoch_loss=self.epoch_loss, step_loss=self.step_loss,
                          grads=self.grads, params=self.params,
                          pred_train=np.asarray(pred_train, self.dtype),
                          pred_test=np.asarray(pred_test, self.dtype).reshape(-1),
                          masks=self.masks)
