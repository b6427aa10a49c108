"""ReLU at exactly 0: how each spelling differentiates its kink, what each framework release
is expected to give there, and whether the models' own forwards keep the documents'
convention.

A ReLU can be written many ways; away from 0 they agree, at exactly 0 their derivatives
differ. The documents use ``(x > 0)``: derivative 0 at 0. No document run reaches exactly 0,
so the runs alone cannot tell a spelling that differs there (``clamp(min=0)`` passes every
run). Three checks do:

* :func:`table` measures, with the installed torch and JAX, each spelling's derivative at
  exactly 0, and runs one step of the spelling case (:func:`kink_case`) from its kink start
  with each spelling for every ReLU, against the reference's manual gradients.
* :data:`EXPECTATIONS` records, per framework and range of releases, what each spelling
  gave (like HuggingFace's ``Expectations``, keyed by versions instead of devices); a
  measured value that differs from the expectation of the installed version is a mismatch.
* :func:`models` runs the models' own forward of every document case that declares a kink
  start (:class:`crosscheck.declaring.cases.Kink`) through each framework's autograd there, against
  the case's manual backward: a spelling change inside the models (``reference._common``'s
  ``relu``, or one forward) shows here, whatever it is.

Each range covers the release series it was measured on (``~=2.13.0``: 2.13.0 and its patch
releases, pre-releases and local builds such as ``2.13.0+cpu`` included). A patch release is
expected to keep its series' conventions, so a change there fails. A release outside every
range (torch 2.14, a nightly) has no expectation: its values are shown, with those that
differ from the last recorded series named in a note, and it does not fail by itself. The
cross-check's verdicts depend on the models' own spelling only, which is checked on every
version and fails wherever it disagrees with the reference; the other spellings are advice
for writing a forward, and a new release that changes one should be seen and recorded here
(a new :class:`Expected` row, measured), not make every check of that release fail.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from crosscheck import tolerances
from crosscheck.frameworks.registry import FRAMEWORKS

#: The reference's convention: derivative of ReLU at exactly 0.
REFERENCE_AT_ZERO = 0.0

#: The spelling the models' forwards use (``reference._common.relu``), in each framework.
MODELS = "x * (x > 0)  [models]"


@dataclasses.dataclass(frozen=True)
class Expected:
    """Each spelling's derivative at exactly 0 in ``framework`` for the releases ``versions``
    (a PEP 440 specifier), as measured with ``recorded_with``."""

    framework: str
    versions: str
    recorded_with: str
    at_zero: Mapping[str, float]

    def covers(self, version: str | None) -> bool:
        from packaging.specifiers import SpecifierSet
        from packaging.version import InvalidVersion, Version

        if version is None:
            return False
        try:
            return SpecifierSet(self.versions).contains(Version(version), prereleases=True)
        except InvalidVersion:
            return False

    def __str__(self) -> str:
        return f"{self.framework} {self.versions} (recorded with {self.recorded_with})"


#: What each spelling gives at exactly 0, per framework and release series. A new series is
#: a new row, measured with ``crosscheck kinks`` (``tests/test_kinks.py`` pins these).
EXPECTATIONS: tuple[Expected, ...] = (
    Expected("torch", "~=2.13.0", "2.13.0", {
        "torch.relu(x)": 0.0, "F.relu(x)": 0.0, "x.clamp(min=0)": 1.0, "torch.maximum(x, 0)": 0.5,
        "torch.where(x > 0, x, 0)": 0.0, MODELS: 0.0}),
    Expected("jax", "~=0.4.27", "0.4.27", {   # pyproject's floor (make matrix NOX="-s floors")
        "jax.nn.relu(x)": 0.0, "jnp.maximum(x, 0)": 0.5, "jnp.where(x > 0, x, 0)": 0.0,
        "jnp.clip(x, 0)": 0.5, MODELS: 0.0}),
    Expected("jax", "~=0.10.2", "0.10.2", {
        "jax.nn.relu(x)": 0.0, "jnp.maximum(x, 0)": 0.5, "jnp.where(x > 0, x, 0)": 0.0,
        "jnp.clip(x, 0)": 0.5, MODELS: 0.0}),
)


def expectation(framework: str, version: str | None) -> Expected | None:
    """The recorded expectations whose range covers ``framework`` at ``version`` (None: none)."""
    return next((e for e in EXPECTATIONS if e.framework == framework and e.covers(version)), None)


def last_recorded(framework: str) -> Expected | None:
    """The latest series recorded for ``framework`` (what a release without one is compared to)."""
    return next((e for e in reversed(EXPECTATIONS) if e.framework == framework), None)


def kink_case():
    """The document case whose kink start the spelling table runs (its :class:`Kink` declares
    ``forward_with``)."""
    from crosscheck.declaring import cases

    return next(c for c in cases.CASES.values() if c.kink is not None and c.kink.forward_with is not None)


def kink_cases() -> list:
    """Every document case that declares a kink start: the models' forwards checked there."""
    from crosscheck.declaring import cases

    return [c for c in cases.CASES.values() if c.kink is not None]


def spellings(framework: str) -> dict[str, Callable]:
    """``framework``'s ReLU spellings (its models module's ``relu_spellings``), and the models'
    own (:data:`MODELS`) last."""
    from crosscheck import frameworks

    return {**frameworks.load(framework).relu_spellings(), MODELS: lambda t: _relu(t)}


#: Each framework's spellings, by name (``SPELLINGS[fw]()``).
SPELLINGS: dict[str, Callable[[], dict[str, Callable]]] = {
    fw: functools.partial(spellings, fw) for fw in FRAMEWORKS}


def _relu(t):
    """The spelling the models' forwards use (``reference._common.relu``)."""
    from array_api_compat import array_namespace

    from crosscheck.reference._common import relu

    return relu(array_namespace(t), t)




@dataclasses.dataclass(frozen=True)
class Row:
    """One spelling in one framework: its derivative at 0, whether that is the reference's,
    what the installed version's expectation says (``expected`` None: no expectation), and
    whether one step of the kink case with it gives the reference's gradients."""

    framework: str
    spelling: str
    at_zero: float
    agrees: bool                      # with the reference's derivative at 0
    kink_case_agrees: bool | None = None
    kink_case_error: float | None = None
    version: str | None = None
    expected: float | None = None

    @property
    def kink_case_text(self) -> str:
        """``agrees (2.3e-16)``, ``DIFFERS (1.1e-01)``, or ``-`` (not run on the kink case)."""
        if self.kink_case_agrees is None:
            return "-"
        return f"{'agrees' if self.kink_case_agrees else 'DIFFERS'} ({self.kink_case_error:.1e})"

    @property
    def as_expected(self) -> bool | None:
        """The measured derivative is the expected one (None: no expectation for this version)."""
        return None if self.expected is None else self.at_zero == self.expected

    @property
    def models(self) -> bool:
        return self.spelling == MODELS


def derivatives_at_zero(frameworks: Sequence[str] = FRAMEWORKS) -> list[Row]:
    """Each spelling's derivative at exactly 0 in each of ``frameworks``, with the expectation
    for the installed version."""
    from crosscheck import frameworks as registry
    from crosscheck.running.versions import installed

    rows = [Row("numpy", "(x > 0).astype(float)  [reference]", float(np.float64(0.0) > 0), True)]
    for fw in frameworks:
        version = installed(fw)
        expected = expectation(fw, version)
        for name, fn in SPELLINGS[fw]().items():
            d = float(registry.load(fw).derivative(fn, np.zeros(1))[0])
            rows.append(Row(fw, name, d, d == REFERENCE_AT_ZERO, version=version,
                            expected=None if expected is None else expected.at_zero.get(name)))
    return rows


def _start(case) -> tuple:
    """A kink case's problem and its kink start's parameters, shaped as the problem's."""
    problem = case.problem()
    params = {k: np.asarray(v, np.float64).reshape(np.shape(problem.init[k]))
              for k, v in case.kink.init.items()}
    return problem, params


def _error(got: Mapping[str, np.ndarray], manual: Mapping[str, np.ndarray]) -> float:
    """Normwise relative error of ``got`` against ``manual``, the worst parameter."""
    return max(float(np.max(np.abs(np.asarray(got[k]) - manual[k])))
               / (float(np.max(np.abs(manual[k]))) or 1.0) for k in manual)


def kink_gradients(frameworks: Sequence[str] = FRAMEWORKS) -> tuple[
        dict[str, np.ndarray], dict[tuple[str, str], dict[str, np.ndarray]]]:
    """One step of the spelling case from its kink start: the reference's manual gradients,
    and autograd's with each spelling used for every ReLU of its forward."""
    from crosscheck import frameworks as registry

    case = kink_case()
    problem, params = _start(case)
    manual = case.gradient(params, problem.hyper, case.kink.sample)[1]
    out = {}
    for fw in frameworks:
        for name, fn in SPELLINGS[fw]().items():
            forward = case.kink.forward_with(lambda xp, t, fn=fn: fn(t))
            respelled = dataclasses.replace(problem, forward=forward)
            out[fw, name] = registry.gradients(fw, respelled, params, case.kink.sample)["params"]
    return {k: np.asarray(v, np.float64) for k, v in manual.items()}, out


def table(frameworks: Sequence[str] = FRAMEWORKS) -> list[Row]:
    """Derivative at 0 of every spelling, its expectation, and whether it reproduces the
    reference's gradients on the kink case (normwise, one step: ``tolerances.STEP_RTOL``)."""
    manual, autograd = kink_gradients(frameworks)
    rows = []
    for r in derivatives_at_zero(frameworks):
        if r.framework == "numpy":
            rows.append(r)
            continue
        err = _error(autograd[r.framework, r.spelling], manual)
        rows.append(dataclasses.replace(r, kink_case_agrees=err <= tolerances.STEP_RTOL, kink_case_error=err))
    return rows


@dataclasses.dataclass(frozen=True)
class ModelCheck:
    """A document case's own forward through ``framework``'s autograd at its kink start,
    against its manual backward: ``zeros``, the ReLU pre-activations exactly 0 there."""

    case: str
    framework: str
    zeros: tuple[str, ...]
    error: float

    @property
    def agrees(self) -> bool:
        return self.error <= tolerances.STEP_RTOL


def zeros_at_start(case) -> tuple[str, ...]:
    """The case's ReLU pre-activations (its problem's masks) that are exactly 0 somewhere at
    its kink start, by its own forward in NumPy."""
    from array_api_compat import array_namespace

    from crosscheck.declaring.problem import recording

    problem, params = _start(case)
    sample = case.kink.sample
    x = problem.x if sample is None else problem.sample(problem.x, sample)
    named: dict = {}
    problem.forward(array_namespace(x), params, x, tap=recording(named))
    return tuple(n for n in problem.masks if np.any(np.asarray(named[n]) == 0))


def models(frameworks: Sequence[str] = FRAMEWORKS) -> list[ModelCheck]:
    """Every kink case's forward, as the framework runs execute it (``case.problem().forward``,
    unchanged), one autograd step at its kink start in each framework, against the case's
    manual backward at the same parameters (the reference's derivative 0 at 0)."""
    from crosscheck import frameworks as registry

    checks = []
    for case in kink_cases():
        problem, params = _start(case)
        sample = case.kink.sample
        manual = {k: np.asarray(v, np.float64)
                  for k, v in case.gradient(params, problem.hyper, sample)[1].items()}
        zeros = zeros_at_start(case)
        for fw in frameworks:
            got = registry.gradients(fw, problem, params, sample)["params"]
            checks.append(ModelCheck(case.name, fw, zeros, _error(got, manual)))
    return checks


def problems(rows: Sequence[Row], checks: Sequence[ModelCheck]) -> list[str]:
    """What makes ``crosscheck kinks`` fail, one line each: a derivative that differs from the
    installed version's expectation, the models' spelling off the reference's convention, a
    model's forward that gives other gradients than its manual backward at exact zeros."""
    found = []
    for r in rows:
        if r.models and not r.agrees:
            found.append(f"{r.framework} {r.version}: the models' ReLU (reference._common.relu) has "
                         f"derivative {r.at_zero:g} at 0, the reference's (x > 0) {REFERENCE_AT_ZERO:g}")
        elif r.as_expected is False:
            found.append(f"{r.framework} {r.version} {_short(r.spelling)}: derivative at 0 measured "
                         f"{r.at_zero:g}, expected {r.expected:g} ({expectation(r.framework, r.version)})")
    for c in checks:
        if not c.agrees:
            found.append(f"{c.case} in {c.framework}: the model's own forward differs from its manual "
                         f"backward at its kink start ({', '.join(c.zeros) or 'nothing'} exactly 0; max rel. "
                         f"error {c.error:.1e}): its ReLU does not have the reference's derivative 0 at 0")
    return found


def _short(spelling: str) -> str:
    return spelling.split("  ")[0]


def notes(rows: Sequence[Row]) -> list[str]:
    """A framework release without an expectation, and what it measures differently from the
    last recorded series (shown, not failed: see the module docstring)."""
    found = []
    for fw in dict.fromkeys(r.framework for r in rows if r.framework != "numpy"):
        version = next(r.version for r in rows if r.framework == fw)
        if expectation(fw, version) is not None:
            continue
        last = last_recorded(fw)
        changed = [f"{_short(r.spelling)} {r.at_zero:g} (was {last.at_zero[r.spelling]:g})"
                   for r in rows if r.framework == fw and last is not None and r.spelling in last.at_zero
                   and r.at_zero != last.at_zero[r.spelling]]
        since = f" (last recorded: {last})" if last else ""
        found.append(f"no expectation for {fw} {version}{since}: "
                     + (f"differs from it in {'; '.join(changed)}" if changed else "every value as recorded")
                     + "; record it in crosscheck.judging.kinks.EXPECTATIONS once checked")
    return found
