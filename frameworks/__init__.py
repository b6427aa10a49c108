"""Any case or model in PyTorch and in JAX: the case's own forward and loss (written once
against ``xp``, carried by its :class:`~crosscheck.declaring.problem.Problem`), gradients from autograd.

Each framework is one :class:`~crosscheck.frameworks.registry.Framework` in :data:`REGISTRY`
(its models module, version packages, optimizer library, plot style). Each models module exposes
``train(problem, dtype, progress=None) -> Trajectory`` and ``gradients(problem, params, sample, dtype)``.
The framework is imported only when it is asked for (:func:`load`), so the reference runs
without torch or JAX (but for a declared optimizer without a hand-written ``update=``, which
the first framework that expresses it runs). One that cannot be imported, or imports but fails its first small
computation (a CUDA library missing at first use, a broken build), raises
:class:`FrameworkUnavailable`, naming it and its installed version: an environment problem,
told apart from a model's forward that does not run there.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from types import ModuleType

import numpy as np

from crosscheck.declaring.problem import Problem
from crosscheck.frameworks.registry import FRAMEWORKS, REGISTRY, Framework
from crosscheck.running import environment, interrupts
from crosscheck.running.record import Trajectory

__all__ = ["FRAMEWORKS", "REGISTRY", "Framework", "FrameworkUnavailable", "gradients", "load", "model_key",
           "train"]


class FrameworkUnavailable(RuntimeError):
    """A framework that cannot be imported or fails on first use: an environment problem, not
    a mismatch. ``framework``, its installed ``version`` (None: not installed) and ``why``
    (what it raised, on one line); ``str()`` is the line the command line prints."""

    def __init__(self, framework: str, version: str | None, why: str, imported: bool = False) -> None:
        super().__init__(framework, version, why, imported)   # args: picklable, from the helper too
        self.framework, self.version, self.why, self.imported = framework, version, why, imported

    def __str__(self) -> str:
        if self.imported:
            return f"{self.framework} {self.version} fails on first use: {self.why}"
        if self.version is None:
            return f"cannot import {self.framework} (not installed): {self.why}"
        return f"cannot import {self.framework} {self.version}: {self.why}"


_READY: set[str] = set()


def load(framework: str) -> ModuleType:
    """The framework's models module (its registry entry's ``module``), imported, and its first
    small computation done once per process (``smoke``: about 2 ms, where the backend starts
    anyway); :class:`FrameworkUnavailable` if either fails. A signal that arrives during the
    import is raised once the import has ended (:func:`crosscheck.running.interrupts.hold`)."""
    from crosscheck.running.versions import installed

    try:
        with interrupts.hold():   # a signal handler must not raise inside torch's C++ init
            module = REGISTRY[framework].import_module()
    except environment.BadEnvironmentVariable:   # the user's setting (the JAX cache), not the install
        raise
    except Exception as e:   # ImportError, or whatever a broken install raises on import
        raise FrameworkUnavailable(framework, installed(framework), _why(e)) from e
    if framework not in _READY:
        try:
            module.smoke()
        except Exception as e:
            raise FrameworkUnavailable(framework, installed(framework), _why(e), imported=True) from e
        _READY.add(framework)
    return module


def _why(e: BaseException) -> str:
    return " ".join(f"{type(e).__name__}: {e}".split())


def model_key(problem: Problem) -> str:
    """What a framework run computes, without the case's name: two problems with the same
    key run the very same forward and loss functions (the same objects) on the very same
    inputs, so one run serves both. Valid within one process, while the problems live."""
    h = hashlib.sha256(f"{id(problem.forward)}|{id(problem.loss)}|{problem.mode}|{problem.sample_slice}|"
                       f"{problem.lr!r}|{problem.epochs}|{problem.masks}".encode())
    for a in (problem.x, problem.y, problem.x_test, *problem.init.values()):
        h.update(np.ascontiguousarray(a).tobytes() + str(a.shape).encode())
    loop = problem.loop
    if loop is not None:   # a real loop: its feed, noise, state, penalty and optimizer too
        feed = loop.feed
        h.update(f"|{id(loop.penalty)}|{loop.optimizer!r}|{loop.noisy}|{loop.stateful}|{feed.batch}|"
                 f"{feed.axis}|{feed.shuffled}|{feed.element}".encode())
        h.update(np.ascontiguousarray(feed.order).tobytes())
        for step in feed.noise:
            for name, a in sorted(step.items()):
                h.update(name.encode() + np.ascontiguousarray(a).tobytes() + str(np.shape(a)).encode())
        for name, a in sorted(loop.state0.items()):
            h.update(name.encode() + np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def gradients(framework: str, problem: Problem, params: dict, sample: int | None = None,
              dtype: str = "float64", scale: dict | None = None, lift: dict | None = None) -> dict:
    """Autograd's gradients at ``params``, for one step: ``{"loss", "params", "intermediates"}``.
    ``scale``: tap name -> array multiplying the gradient that flows back through that tap;
    ``lift``: tap name -> a positive number replacing that tapped tensor's values at or below 0,
    its gradient passing unchanged (probes' hypotheses: :mod:`crosscheck.judging.probes`)."""
    if scale or lift:
        return load(framework).gradients(problem, params, sample, dtype, scale=scale, lift=lift)
    return load(framework).gradients(problem, params, sample, dtype)


def train(framework: str, problem: Problem, dtype: str = "float64",
          progress: Callable[[int], None] | None = None) -> Trajectory:
    """Run ``problem`` in ``framework`` and return its trajectory (dtype checked).

    ``progress``, if given, is called with the number of update steps done, as often as the
    framework's ``train`` reports them (every ``torch_models.PROGRESS_EVERY`` epochs in torch,
    once at the end in JAX: one compiled call).
    """
    traj = load(framework).train(problem, dtype, progress)
    traj.check_dtype()
    return traj
