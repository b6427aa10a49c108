"""What a framework model needs to redo a reference run.

A case's ``problem(...)`` returns one: the data as float64, the initial values (for the
documents, their seeded draw with NumPy's legacy generator, in the document's draw order),
the hyper-parameters, and the forward pass and loss written once against the array
namespace ``xp``. torch and JAX copy ``init`` as they are, so step 0 is bitwise identical
everywhere; their own generators could not reproduce NumPy's stream.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, Literal

import numpy as np

#: ``forward(xp, params, x, tap) -> prediction``: one forward pass for NumPy, torch and JAX.
#: ``tap(name, t)`` returns ``t``; the forward calls it on each intermediate it names.
Forward = Callable[..., Any]
#: ``loss(xp, prediction, y) -> scalar``: the quantity the manual gradients differentiate.
Loss = Callable[[Any, Any, Any], Any]


def keep(name: str, t: Any) -> Any:
    """The default tap: names an intermediate and changes nothing."""
    return t


def recording(named: dict[str, Any]) -> Callable[[str, Any], Any]:
    """A tap that keeps every intermediate in ``named`` (and changes nothing)."""
    def tap(name: str, t: Any) -> Any:
        named[name] = t
        return t
    return tap


@dataclasses.dataclass(frozen=True, eq=False)
class Problem:
    """A case's data, initial parameters, hyper-parameters, forward pass and loss.

    Attributes:
        case: case or model name.
        mode: ``batch`` (one update per epoch on the whole batch) or ``sgd`` (one update
            per sample, the epoch's loss being the sum of the samples' losses), for a problem
            without ``loop``; a real loop's steps are its feed's.
        x, y: training inputs and targets, float64 (integer class labels of a real loop kept
            as integers), samples along axis 0 (a real loop's ``sample_axis``).
        x_test: test input(s) whose predictions are recorded, shape (0,) if none.
        init: parameter name -> initial value, in the declared order.
        hyper: lr, epochs and the rest, as recorded in the trajectory.
        forward: see :data:`Forward`.
        loss: see :data:`Loss`.
        masks: names of tapped ReLU pre-activations whose ``> 0`` masks are recorded.
        sample_slice: ``sgd`` only: a step sees ``x[i:i + 1]`` (True, the sample axis kept)
            or the element ``x[i]`` (False: the documents' plain-Python loops over scalars).
        loop: a real loop's declaration (:class:`crosscheck.declaring.loop.Loop`: its feed,
            state, penalty and optimizer); None for the documents' loops, which the
            frameworks run as its plain instance (:func:`crosscheck.declaring.loop.loop_of`).
    """

    case: str
    mode: Literal["batch", "sgd"]
    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray
    init: Mapping[str, np.ndarray]
    hyper: Mapping[str, Any]
    forward: Forward
    loss: Loss
    masks: tuple[str, ...] = ()
    sample_slice: bool = False
    loop: Any = None   # crosscheck.declaring.loop.Loop: the general loop's feed, state, penalty, optimizer

    @property
    def lr(self) -> float:
        return float(self.hyper["lr"])

    @property
    def epochs(self) -> int:
        """Total epochs trained (all executions of the cell)."""
        return int(self.hyper["epochs"]) * int(self.hyper.get("runs", 1))

    @property
    def steps(self) -> int:
        if self.loop is not None:
            return self.loop.feed.steps
        return self.epochs * (len(self.x) if self.mode == "sgd" else 1)

    def sample(self, a: Any, i: int) -> Any:
        """Sample ``i`` of ``a`` (``x`` or ``y``) as a step of this problem sees it."""
        return a[i:i + 1] if self.sample_slice else a[i]


def make(case: str, mode: str, x: Any, y: Any, init: Mapping[str, Any], hyper: Mapping[str, Any],
         forward: Forward, loss: Loss, x_test: Any = (), **kw: Any) -> Problem:
    f64 = np.float64
    y = np.asarray(y)
    y = y if y.dtype.kind in "iu" else np.asarray(y, f64)   # class labels stay integers
    return Problem(case=case, mode=mode, x=np.asarray(x, f64), y=y,
                   x_test=np.asarray(x_test, f64).reshape(-1),
                   init={k: np.array(v, f64) for k, v in init.items()}, hyper=dict(hyper),
                   forward=forward, loss=loss, **kw)
