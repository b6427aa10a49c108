"""The case registry: each document program declared once.

Everything else (the CLI, the runner, the tests, the baselines) iterates over
:data:`CASES` and derives what it needs from the case's reference module.
"""

from __future__ import annotations

import dataclasses
import importlib
from types import ModuleType
from typing import Any

import numpy as np

from crosscheck.record import Trajectory


@dataclasses.dataclass(frozen=True)
class Case:
    """One document program.

    Attributes:
        name: the case name used everywhere (CLI, test ids, baselines).
        module: the reference module that *is* the document's code.
        summary: one line for ``crosscheck list``.
    """

    name: str
    module: str
    summary: str

    @property
    def ref(self) -> ModuleType:
        return importlib.import_module(self.module)

    @property
    def document(self) -> str:
        return self.ref.DOCUMENT

    @property
    def cell(self) -> str:
        return self.ref.CELL

    @property
    def params(self) -> tuple[str, ...]:
        """Parameter names in the document's order."""
        return tuple(self.ref.GRADS)

    @property
    def unit_params(self) -> dict[str, tuple[str, ...]]:
        """ReLU pre-activation name -> the parameters that get no gradient while it is
        off on every sample (empty for cases without ReLU units)."""
        return dict(getattr(self.ref, "UNIT_PARAMS", {}))

    def conditioning(self, traj: Trajectory) -> float:
        """Largest amplification of rounding by ill-conditioned activation derivatives over
        the run's steps (1 if none); per step: :func:`crosscheck.compare.conditioning`."""
        from crosscheck import compare

        return float(np.max(compare.conditioning(traj, self.ref), initial=1.0))

    def run_reference(self, **overrides: Any) -> Trajectory:
        """The document's run, with optional overrides (``lr``, ``epochs``, ...)."""
        return self.ref.run(**overrides)

    def transcript(self, traj: Trajectory) -> str:
        return self.ref.transcript(traj)


CASES: dict[str, Case] = {c.name: c for c in (
    Case("linear_nobias", "crosscheck.reference.linear_nobias",
         "y = 2x, 1-1-1 linear without bias, weights rand*0.01, 1000 full-batch epochs"),
    Case("linear_bias", "crosscheck.reference.linear_bias",
         "y = 2x + 3, 1-1-1 linear with scalar biases, 1000 full-batch epochs"),
    Case("relu", "crosscheck.reference.relu",
         "y = 2x + 3, ReLU on hidden and output, init without *0.01, 3000 epochs"),
    Case("relu_class", "crosscheck.reference.relu_class",
         "LinearRegressionNN with pluggable ReLU/MSE objects, sizes (1, 1, 1), 3000 epochs"),
    Case("sgd_linear", "crosscheck.reference.sgd_linear",
         "per-sample SGD of w, b from 0 on data 1..4, 100 epochs, prediction at 7"),
    Case("sgd_two_relu", "crosscheck.reference.sgd_two_relu",
         "two ReLU hidden units, hand-set init, per-sample SGD on 1..5, cell run twice"),
)}


class UnknownCase(KeyError):
    pass


def get(name: str) -> Case:
    try:
        return CASES[name]
    except KeyError:
        raise UnknownCase(f"unknown case {name!r}; known cases: {', '.join(CASES)}") from None
