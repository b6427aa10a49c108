"""``crosscheck.check(model)``: the whole cross-check of one model from Python (a notebook,
a script, a test), with the result the command line would print."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from crosscheck import frameworks as fw_registry
from crosscheck.declaring.model import Model, bad_epochs, bad_lr, needs_run, register
from crosscheck.judging.metrics import Divergence
from crosscheck.running.record import Trajectory


@dataclasses.dataclass(frozen=True, repr=False)
class Result:
    """What [`check()`][crosscheck.api.check] found. ``agree``: every framework agrees with the model's manual
    backward (both questions) and behaves the same; ``first_divergence``: the earliest
    place where one does not (None if all agree)."""

    model: str
    report: object                     # crosscheck.reporting.report.CaseResult
    dtype: str

    @property
    def agree(self) -> bool:
        """Every framework that ran agrees, and at least one ran (a leg that cannot express
        the model's optimizer is not run, and never agrees in its place)."""
        return bool(self.report.comparisons) and all(self.report.agree(fw) for fw in self.report.comparisons)

    @property
    def first_divergence(self) -> Divergence | None:
        found = [c.first for c in self.report.comparisons.values() if c.first is not None]
        return min(found, key=lambda d: d.step) if found else None

    @property
    def diagnosis(self) -> str:
        return self.report.diagnosis

    @property
    def trajectories(self) -> dict[str, Trajectory]:
        return self.report.trajs

    @property
    def verdicts(self) -> dict[str, str]:
        """Framework -> its verdict line, as the table prints it."""
        from crosscheck.reporting import report

        return {fw: report.verdict(self.report, fw) for fw in self.report.comparisons}

    def to_json(self) -> dict:
        from crosscheck.reporting import report

        return report.to_json([self.report], self.dtype)

    def __repr__(self) -> str:
        """One short line (the trajectories and the report stay behind their attributes)."""
        first = self.first_divergence
        where = "" if first is None else (
            f", first_divergence=<{first.question} step {first.step} "
            f"{first.quantity}{f'[{first.parameter}]' if first.parameter else ''} ({first.framework})>")
        return (f"Result(model={self.model!r}, agree={self.agree}, frameworks="
                f"{list(self.report.comparisons)}, dtype={self.dtype!r}{where})")

    def __str__(self) -> str:
        from crosscheck.reporting import report

        return report.table([self.report])

    def _repr_html_(self) -> str:
        """In a notebook: the verdict per framework, the diagnosis, a mismatch's explanation
        and the errors and loss plots inline (see :func:`crosscheck.reporting.html.fragment`)."""
        from crosscheck.reporting import html

        return html.fragment(self.report, self.dtype)


@dataclasses.dataclass(frozen=True, repr=False)
class Walkthrough:
    """What [`explain()`][crosscheck.api.explain] shows: the manual backward of one step, line
    by line, beside each framework's autograd and finite differences. ``str()`` is the text
    ``crosscheck explain`` prints; in a notebook it shows as a table, the first wrong line and
    the lines that inherit its error marked."""

    model: str
    step: int
    walk: object                       # crosscheck.reporting.explain.Walk

    @property
    def agree(self) -> bool:
        """Every checked line agrees with autograd."""
        return self.walk.agree

    @property
    def first_wrong(self) -> str | None:
        """The first line, in the backward's order, that does not agree (None if all do)."""
        return self.walk.first_wrong

    def __str__(self) -> str:
        return self.walk.text

    def __repr__(self) -> str:
        return (f"Walkthrough(model={self.model!r}, step={self.step}, agree={self.agree}, "
                f"first_wrong={self.first_wrong!r})")

    def _repr_html_(self) -> str:
        return self.walk.html()


def explain(model: Model, step: int = 0, lr: float | None = None, epochs: int | None = None) -> Walkthrough:
    """Walk ``model``'s hand-written backward at update ``step`` line by line, as
    ``crosscheck explain FILE --step K`` does, for a model defined anywhere (a notebook's
    model has no file for the command line to find). ``lr`` and ``epochs`` override the
    model's, as ``check()``'s do.

    Raises [`crosscheck.ModelError`][crosscheck.declaring.model.ModelError] for a model that
    cannot be checked as declared, and ``ValueError`` for a step outside the run (one line,
    as the command line says it)."""
    from crosscheck.reporting import explain as walker

    if not isinstance(model, Model):
        raise TypeError(f"explain() takes a crosscheck.Model, got {type(model).__name__}")
    if isinstance(step, bool) or not isinstance(step, int):
        raise ValueError(f"step must be a whole number, got {step!r}")
    _, overrides = arguments(fw_registry.FRAMEWORKS, "float64", lr, epochs)
    needs_run(model.name, model.hyper(**overrides))
    case = register(model)
    try:
        return Walkthrough(case.name, step, walker.walk_case(case.name, step, **overrides))
    except walker.StepOutOfRun as e:
        raise ValueError(f"step {step}: {e}") from None


def check(model: Model, frameworks: Sequence[str] = fw_registry.FRAMEWORKS, dtype: str = "float64",
          lr: float | None = None, epochs: int | None = None) -> Result:
    """Run ``model``'s hand-written training beside each framework's autograd, and compare.

    Raises [`crosscheck.ModelError`][crosscheck.declaring.model.ModelError] for a model that cannot be
    checked as declared, ``crosscheck.frameworks.FrameworkUnavailable`` for a framework that does not import
    or fails on first use (it names the framework and its installed version), and a
    ``ValueError`` (``crosscheck.running.environment.BadEnvironmentVariable``) for a bad
    ``CROSSCHECK_*`` environment variable, before anything runs."""
    from crosscheck.reporting import report

    if not isinstance(model, Model):
        raise TypeError(f"check() takes a crosscheck.Model, got {type(model).__name__}")
    frameworks, overrides = arguments(frameworks, dtype, lr, epochs)
    needs_run(model.name, model.hyper(**overrides))
    case = register(model)
    (name, trajs), = report.run_trajectories([case.name], frameworks, dtype, **overrides)
    return Result(name, report.analyse(name, trajs, dtype, asked=frameworks), dtype)


def arguments(frameworks: Sequence[str] | str, dtype: str, lr: float | None,
              epochs: int | None) -> tuple[list[str], dict]:
    """``check()``'s arguments validated as the command line validates its options (one
    ``ValueError`` line each): the frameworks, each once (one name alone is one framework),
    and the overrides of the model's lr and epochs."""
    names = [frameworks] if isinstance(frameworks, str) else frameworks
    try:
        names = list(dict.fromkeys(names))
    except TypeError:
        names = None
    if not names or any(f not in fw_registry.FRAMEWORKS for f in names):
        raise ValueError(f"frameworks must be one or more of {', '.join(fw_registry.FRAMEWORKS)}, "
                         f"got {frameworks!r}")
    if dtype not in ("float64", "float32"):
        raise ValueError(f"dtype must be 'float64' or 'float32', got {dtype!r}")
    overrides = {}
    for what, value, bad in (("lr", lr, bad_lr), ("epochs", epochs, bad_epochs)):
        if value is not None:
            why = bad(value)
            if why:
                raise ValueError(f"{what} {why}")
            overrides[what] = value
    return names, overrides
