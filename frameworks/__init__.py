"""The cases in PyTorch and in JAX: forward passes only, gradients from autograd.

Each framework module exposes ``train(problem, dtype) -> Trajectory``. The framework
is imported only when it is asked for, so the reference runs without torch or JAX.
"""

from __future__ import annotations

import importlib

from crosscheck.problem import Problem
from crosscheck.record import Trajectory

FRAMEWORKS = ("torch", "jax")
_MODULES = {"torch": "frameworks.torch_models", "jax": "frameworks.jax_models"}


def train(framework: str, problem: Problem, dtype: str = "float64") -> Trajectory:
    """Run ``problem`` in ``framework`` and return its trajectory (dtype checked)."""
    traj = importlib.import_module(_MODULES[framework]).train(problem, dtype)
    traj.check_dtype()
    return traj
