"""The case registry: every model the tool checks, declared once as a :class:`Case`.

A document program declares its ``CASE`` at the end of its module in ``reference/``;
the registry finds them there, so a seventh document case is one new file. A user's
:class:`crosscheck.Model` becomes a ``Case`` too (:meth:`crosscheck.declaring.model.Model.case`)
and is registered under its name for the run. Everything else (the CLI, the runner,
the comparison, the diagnostics, the report, the tests) takes what it needs from the
case's declared fields, never from its name.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import pkgutil
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from crosscheck.declaring.problem import Forward, Problem
from crosscheck.running.record import Trajectory

#: ``gradient(params, hyper, sample) -> (loss, {name: gradient})``: the manual backward at
#: ``params`` (which it reads and must not write), with the run's hyper-parameters.
Gradient = Callable[[Mapping[str, np.ndarray], Mapping[str, Any], "int | None"], tuple[Any, dict]]


@dataclasses.dataclass(frozen=True)
class Option:
    """A run option only some cases take (``--sizes``): its parser and help."""

    parse: Callable[[str], Any]
    metavar: str
    help: str


@dataclasses.dataclass(frozen=True)
class Source:
    """Where ``crosscheck explain`` reads a document's manual backward: the function, the
    line where its updates begin, and the document's name of each parameter's gradient
    and of each intermediate's (the tapped tensor it belongs to)."""

    function: Callable[..., Any]
    update: str
    grads: Mapping[str, str]
    intermediates: Mapping[str, str]


@dataclasses.dataclass(frozen=True)
class Kink:
    """A start where ReLU pre-activations hit exactly 0 with nonzero upstream gradients, for
    ``crosscheck kinks``: the parameters there (given to the case's manual ``gradient`` and to
    autograd, at ``sample`` for a per-sample case), and a line saying where the kinks are.
    Every document case with a ReLU declares one, so that its own forward is checked where
    the spellings differ; the one that also declares ``forward_with`` (the case's forward with
    a given ReLU spelling ``f(xp, t)`` for every ReLU) runs the table of spellings."""

    init: Mapping[str, Any]
    note: str
    forward_with: Callable[[Callable], Forward] | None = None
    sample: int | None = None


@dataclasses.dataclass(frozen=True, eq=False)
class Case:
    """One model under check, and what it can do.

    Attributes:
        name: the name used everywhere (CLI, test ids, JSON, plots, baselines).
        summary: one line for ``crosscheck list``.
        params: parameter names in declared order.
        problem: ``problem(**overrides) -> Problem`` for the framework models.
        run_reference: ``run(**overrides) -> Trajectory``: the hand-written training run.
        gradient: the manual backward at given parameters (see :data:`Gradient`).
        loss_at: ``loss_at(params, hyper, sample) -> (loss, sides)``: the loss, and which side
            of each ReLU kink every recorded pre-activation is on (for finite differences).
        document, cell: where a document case comes from (None for a user's model).
        position: order within its document.
        transcript: the run printed in the document's format (document cases only).
        source: the document's backward for ``explain`` (document cases).
        intermediates: ``intermediates(params, hyper, sample) -> {tap name: dL/d tap}``, a
            user model's hand-written gradients of its tapped intermediates, in order.
        gradient_precise: ``gradient`` run in extended precision (None where it cannot be).
        units: ReLU pre-activation name -> (layer label, index of its first unit).
        unit_params: ReLU pre-activation -> parameters with exactly zero gradient while it
            is off on every sample.
        conditioning: per-step amplification of rounding beyond the plain chain of operations.
        curvature: the loss is full-batch and smooth enough for the curvature diagnostic.
        options: extra overrides this case takes (``--sizes``).
        reruns: the recorded hyper-parameters that redo a run when passed back as overrides.
        kink: a start where pre-activations hit 0 exactly (see :class:`Kink`).
        origin: the file a user model was loaded from (shown by ``explain``).
        notes: what the check changed of the declaration, for the report (data upcast).
        stepper: ``stepper(hyper) -> step(k, params) -> (loss, grads, new params)``: one step
            of the case's own training loop, its carried state and optimizer state kept
            inside (None: ``p - lr * gradient``, the documents' loops).
        update: a user's hand-written optimizer ``update(params, grads, state)``, checked
            against the frameworks' optimizers at their own steps (None: none declared).
        optimizer: the declared optimizer (:mod:`crosscheck.optim`) the update is judged against.
        penalty_gradient: ``penalty_gradient(params) -> {name: gradient}`` of a declared penalty
            alone (central differences), for naming a penalty's term that is off.
        cannot_express: framework -> why its own optimizer cannot run the declared one.
    """

    name: str
    summary: str
    params: tuple[str, ...]
    problem: Callable[..., Problem]
    run_reference: Callable[..., Trajectory]
    gradient: Gradient
    loss_at: Callable[..., tuple[Any, tuple]]
    document: str | None = None
    cell: str | None = None
    position: int = 0
    transcript: Callable[[Trajectory], str] | None = None
    source: Source | None = None
    intermediates: Callable[..., Mapping[str, Any]] | None = None
    gradient_precise: Callable[..., tuple[Any, dict] | None] | None = None
    units: Mapping[str, tuple[str, int]] = dataclasses.field(default_factory=dict)
    unit_params: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    conditioning: Callable[[Trajectory], Any] | None = None
    curvature: bool = False
    options: Mapping[str, Option] = dataclasses.field(default_factory=dict)
    reruns: tuple[str, ...] = ("lr", "epochs")
    kink: Kink | None = None
    origin: str | None = None
    notes: tuple[str, ...] = ()
    stepper: Callable[..., Callable[..., tuple]] | None = None
    update: Callable[..., Any] | None = None
    optimizer: Any = None
    cannot_express: Mapping[str, str] = dataclasses.field(default_factory=dict)
    penalty_gradient: Callable[[Mapping[str, np.ndarray]], dict] | None = None

    def printed_hyper(self) -> dict[str, Any] | None:
        """The hyper-parameters of the run the document printed (None: nothing printed)."""
        return dict(self.problem().hyper) if self.transcript is not None else None


class UnknownCase(KeyError):
    pass


_USER: dict[str, Case] = {}


@functools.cache
def documents() -> dict[str, Case]:
    """Every document case, found in the reference package, in document order."""
    import crosscheck.reference as package

    found = []
    for info in pkgutil.iter_modules(package.__path__):
        if not info.name.startswith("_"):
            found.append(importlib.import_module(f"{package.__name__}.{info.name}").CASE)
    return {c.name: c for c in sorted(found, key=lambda c: (c.document, c.position))}


def __getattr__(name: str) -> Any:
    if name == "CASES":   # module attribute, built on first use (the reference imports this module)
        return documents()
    raise AttributeError(name)


def register(case: Case) -> Case:
    """Make a user's model known by its name in this process (the latest one wins)."""
    if case.name in documents():
        raise ValueError(f"model name {case.name!r} is taken by a document case; choose another")
    _USER[case.name] = case
    return case


def get(name: str) -> Case:
    found = documents().get(name) or _USER.get(name)
    if found is None:
        known = ", ".join([*documents(), *_USER])
        raise UnknownCase(f"unknown case {name!r}; known cases: {known} (or a path to a .py file "
                          "that defines a crosscheck.Model)")
    return found
