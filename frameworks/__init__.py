"""Any case or model in PyTorch and in JAX: the case's own forward and loss (written once
against ``xp``, carried by its :class:`~crosscheck.problem.Problem`), gradients from autograd.

Each framework module exposes ``train(problem, dtype, progress=None) -> Trajectory`` and
``gradients(problem, params, sample, dtype)``.
The framework is imported only when it is asked for, so the reference runs without torch
or JAX; one that cannot be imported raises :class:`FrameworkUnavailable`, naming it.
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Callable
from types import ModuleType

import numpy as np

from crosscheck.problem import Problem
from crosscheck.record import Trajectory

FRAMEWORKS = ("torch", "jax")
_MODULES = {"torch": "crosscheck.frameworks.torch_models", "jax": "crosscheck.frameworks.jax_models"}


class FrameworkUnavailable(RuntimeError):
    """A framework that cannot be imported: an environment problem, not a mismatch."""


def _module(framework: str) -> ModuleType:
    try:
        return importlib.import_module(_MODULES[framework])
    except Exception as e:   # ImportError, or whatever a broken install raises on import
        message = " ".join(f"{type(e).__name__}: {e}".split())
        raise FrameworkUnavailable(f"cannot import {framework}: {message}") from e


def model_key(problem: Problem) -> str:
    """What a framework run computes, without the case's name: two problems with the same
    key run the very same forward and loss functions (the same objects) on the very same
    inputs, so one run serves both. Valid within one process, while the problems live."""
    h = hashlib.sha256(f"{id(problem.forward)}|{id(problem.loss)}|{problem.mode}|{problem.sample_slice}|"
                       f"{problem.lr!r}|{problem.epochs}|{problem.masks}".encode())
    for a in (problem.x, problem.y, problem.x_test, *problem.init.values()):
        h.update(np.ascontiguousarray(a).tobytes() + str(a.shape).encode())
    return h.hexdigest()


def gradients(framework: str, problem: Problem, params: dict, sample: int | None = None,
              dtype: str = "float64") -> dict:
    """Autograd's gradients at ``params``, for one step: ``{"loss", "params", "intermediates"}``."""
    return _module(framework).gradients(problem, params, sample, dtype)


def train(framework: str, problem: Problem, dtype: str = "float64",
          progress: Callable[[int], None] | None = None) -> Trajectory:
    """Run ``problem`` in ``framework`` and return its trajectory (dtype checked).

    ``progress``, if given, is called with the number of update steps done: every
    ``torch_models.PROGRESS_EVERY`` epochs in torch, once at the end in JAX (one compiled
    call).
    """
    traj = _module(framework).train(problem, dtype, progress)
    traj.check_dtype()
    return traj
