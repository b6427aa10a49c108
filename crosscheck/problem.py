"""What a framework model needs to redo a reference run.

Each reference module's ``problem(...)`` returns one: the document's data as float64,
the document's seeded initial draw (NumPy's legacy generator, in the document's draw
order), and the hyper-parameters. torch and JAX copy ``init`` as they are, so step 0 is
bitwise identical everywhere; their own generators could not reproduce NumPy's stream.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np


@dataclasses.dataclass(frozen=True)
class Problem:
    """A case's data, initial parameters and hyper-parameters.

    Attributes:
        case: case name.
        mode: ``batch`` (one update per epoch on the mean loss) or ``sgd`` (one update
            per sample on its squared error, the epoch's loss being their sum).
        x, y: training inputs and targets, float64; (m, n) and (m, o) for ``batch``,
            (m,) for ``sgd``.
        x_test: the document's test input(s), shape (0,) if it has none.
        init: parameter name -> initial value, in the document's order.
        hyper: lr, epochs and the rest, as recorded in the trajectory.
        masks: names of the ReLU pre-activations whose masks are recorded.
        activations: (hidden, output) activation names for the class model.
    """

    case: str
    mode: Literal["batch", "sgd"]
    x: np.ndarray
    y: np.ndarray
    x_test: np.ndarray
    init: Mapping[str, np.ndarray]
    hyper: Mapping[str, Any]
    masks: tuple[str, ...] = ()
    activations: tuple[str, str] = ("identity", "identity")

    @property
    def lr(self) -> float:
        return float(self.hyper["lr"])

    @property
    def epochs(self) -> int:
        """Total epochs trained (all executions of the cell)."""
        return int(self.hyper["epochs"]) * int(self.hyper.get("runs", 1))

    @property
    def steps(self) -> int:
        return self.epochs * (len(self.x) if self.mode == "sgd" else 1)


def make(case: str, mode: str, x: Any, y: Any, init: Mapping[str, Any], hyper: Mapping[str, Any],
         x_test: Any = (), **kw: Any) -> Problem:
    f64 = np.float64
    return Problem(case=case, mode=mode, x=np.asarray(x, f64), y=np.asarray(y, f64),
                   x_test=np.asarray(x_test, f64).reshape(-1),
                   init={k: np.array(v, f64) for k, v in init.items()}, hyper=dict(hyper), **kw)
