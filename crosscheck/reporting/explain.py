"""``crosscheck explain``: why each manual gradient line is right (or where it is not).

For one update step it prints every line of the manual backward in order (a document's
lines as written, or a user's model's hand-written intermediates and parameter gradients),
with the value the hand-written code computes, autograd's gradient of the loss with respect to
the same tensor in torch and in JAX, the finite difference where one exists (parameter
gradients), and a verdict per line.
"""

from __future__ import annotations

import ast
import dataclasses

import numpy as np

from crosscheck import tolerances
from crosscheck.declaring import cases
from crosscheck.judging import metrics, mistakes, oracles, probes
from crosscheck.running.record import Trajectory


def _short(v: np.ndarray, n: int = 4) -> str:
    flat = np.asarray(v, np.float64).ravel()
    body = ", ".join(f"{x:.6g}" for x in flat[:n])
    more = f", ... ({flat.size} values)" if flat.size > n else ""
    return f"[{body}{more}]" if flat.size != 1 or np.ndim(v) else body


@dataclasses.dataclass(frozen=True)
class Entry:
    """One line of the walk: the line as written, its rows of values, its verdict, and its
    place among the wrong lines (``mark``)."""

    name: str
    text: str
    rows: tuple[str, ...]
    verdict: str                 # "agree", "MISMATCH", or "local" (shown, not checked)
    mark: str = ""
    role: str = ""               # "first" wrong line, "inherits" its error, "own" mistake, "after" it


@dataclasses.dataclass(frozen=True)
class Walk:
    """``explain``'s view of one step: the header, every line of the manual backward in
    order, and the summary counted from the lines."""

    case: str
    step: int
    header: tuple[str, ...]
    entries: tuple[Entry, ...]
    summary: str
    likely: str | None = None    # the step's likely mistake, as run names it (None: all agree)

    @property
    def agree(self) -> bool:
        return all(e.verdict != "MISMATCH" for e in self.entries)

    @property
    def first_wrong(self) -> str | None:
        return next((e.name for e in self.entries if e.verdict == "MISMATCH"), None)

    def html(self) -> str:
        """The walk as an HTML fragment (a notebook's view): a row per line, the first wrong
        line and the lines that inherit its error marked."""
        from crosscheck.reporting import html

        return html.walk_fragment(self)

    @property
    def text(self) -> str:
        body = []
        for e in self.entries:
            body.append(f"  {e.text}")
            body.extend(e.rows)
            if e.mark:
                body.append(f"      mark     {e.mark}")
        likely = [f"likely: {self.likely}"] if self.likely else []
        return "\n".join([*self.header, *likely, "", *body, "", self.summary])


class StepOutOfRun(ValueError):
    """A step the run does not have; ``str()`` says which it has."""


def walk_case(name: str, step: int, **overrides) -> Walk:
    """Case ``name``'s reference run (with ``overrides``) walked at ``step``, as the command
    line and ``crosscheck.explain`` both do; :class:`StepOutOfRun` where it has no such step."""
    from crosscheck.running import runner

    traj = runner.run(name, **overrides)
    if not 0 <= step < traj.steps:
        raise StepOutOfRun(f"{name} has steps 0..{traj.steps - 1}")
    return walk(traj, step)


def render(traj: Trajectory, step: int) -> tuple[str, bool]:
    """The teaching view of ``traj`` at ``step``, and whether every line agrees.

    The header's verdict and the closing summary are counted from the lines below them.
    """
    w = walk(traj, step)
    return w.text, w.agree


def walk(traj: Trajectory, step: int) -> Walk:
    """:func:`render`'s view as a structure: each line's rows, verdict and mark."""
    c = cases.get(traj.case)
    if traj.feed is not None:   # a real loop: the step's batch, as its feed gave it
        feed = traj.feed
        epoch, j = divmod(step, feed.per_epoch)
        index = feed.index(step)
        shown = ", ".join(map(str, index[:8])) + (", ..." if len(index) > 8 else "")
        where = (f"epoch {epoch}, batch {j} of {feed.per_epoch} (samples {shown})" if feed.per_epoch > 1
                 else f"epoch {epoch}")
    else:
        sample = oracles.sample_of(traj, step)
        per_epoch = traj.steps // traj.epochs
        where = (f"epoch {step // per_epoch}, sample {sample}" if sample is not None else f"epoch {step}")
    entries, verdicts, wrong = [], {}, []
    lines = oracles.chain(traj, step)
    ctx: dict = {}   # the readings' context, made at the first wrong line (none where all agree)
    for line in lines:
        rows = [f"      manual   {_short(line.manual)}"]
        if line.kind == "local":
            rows.append("      (a local derivative, not a gradient of the loss: autograd has no "
                        "value for it; it enters the lines below)")
            entries.append(Entry(line.name, line.text, tuple(rows), "local"))
            continue
        for fw, err in line.errors().items():
            rows.append(f"      {fw:<8} {_short(line.autograd[fw])}   max rel. diff {err:.1e}"
                        + ("" if err <= line.tol else f" > tol {line.tol:.1e}"))
        if line.extended:
            rows.append("      (its own float64 rounding: the same code in extended precision agrees "
                        "with autograd)")
        good = line.verdict == "agree"
        if not good:
            ctx = ctx or probes.context(traj, c, step)
            rows.extend(_elements(line, ctx, _param_of(line.name, c)))
            wrong.append(line)
        f = line.fd
        if f is not None:
            rows.append(_fd_line(line))
            good &= f.agree or line.settled
        else:
            rows.append("      fd       - (an intermediate, not a parameter)")
        rows.append(f"      verdict  {'agree' if good else 'MISMATCH'}")
        verdicts[line.name] = good
        entries.append(Entry(line.name, line.text, tuple(rows), "agree" if good else "MISMATCH"))
    entries = _marked(entries)
    summary = _summary(verdicts)
    origin = f"of {c.document} ({c.cell})" if c.document else f"of the model ({c.origin or 'in Python'})"
    header = (f"{traj.case}: the manual backward {origin}, step {step} ({where})",
              "params: " + "  ".join(f"{k}={_short(v[step])}" for k, v in traj.params.items()),
              f"loss at this step: {traj.step_loss[step]:.10g}",
              f"criterion: autograd within {tolerances.STEP_RTOL:.1e} (normwise, one step, relative to the "
              "largest value so far) plus what a 1-ulp move of the parameters moves the line by; "
              "finite differences within their derived tolerance (a second opinion where two autograds "
              "agree with the manual value)",
              f"verdict: {summary}")
    likely = None
    if wrong and (why := _step_reading(lines, wrong, traj, c, step)) is not None:
        read = "" if why.parameter is None else f" (read on {why.parameter}, the clearest wrong line)"
        likely = why.text + read
    return Walk(traj.case, step, header, tuple(entries), summary, likely)


def _reads(text: str) -> set[str] | None:
    """The names a line ``target = expression`` reads; None where it is not such a line (a
    user's hand-written value, named but not written out)."""
    try:
        tree = ast.parse(text.strip())
    except SyntaxError:
        return None
    if len(tree.body) != 1 or not isinstance(tree.body[0], (ast.Assign, ast.AugAssign)):
        return None
    node = tree.body[0]
    value = node.value
    reads = {n.id for n in ast.walk(value) if isinstance(n, ast.Name)}
    if isinstance(node, ast.AugAssign) and isinstance(node.target, ast.Name):
        reads.add(node.target.id)
    return reads


def _marked(entries: list[Entry]) -> list[Entry]:
    """The first wrong line marked, and each later wrong line marked as inheriting its error
    (computed from it, or from a local factor it reads, through the lines between), as wrong
    on its own (where the lines as written show it is not), or as wrong after it (where they
    cannot tell: a user's hand-written values are named, not written out, and a line that
    cannot be read leaves what follows it unknown)."""
    first = next((i for i, e in enumerate(entries) if e.verdict == "MISMATCH"), None)
    if first is None:
        return entries
    out, head = list(entries), entries[first]
    reads = _reads(head.text)
    known = reads is not None
    out[first] = dataclasses.replace(head, role="first", mark=(
        "the first wrong line: the mistake is here, or in a local factor it reads" if known else
        "the first wrong line listed (a hand-written value, named but not written out: a backward that "
        "returns its intermediates, (grads, {name: dL/dname}), shows where in its order the mistake enters)"))
    local = {e.name for e in entries if e.verdict == "local"}
    tainted = {head.name} | ((reads or set()) & local)   # its local factors may be the wrong part
    for i in range(first + 1, len(entries)):
        e = entries[i]
        reads = _reads(e.text)
        known = known and reads is not None
        if not known:
            if e.verdict == "MISMATCH":
                mark = f"also wrong, after {head.name}: its error if computed from it, else one of its own"
                out[i] = dataclasses.replace(e, role="after", mark=mark)
            continue
        if reads & tainted:
            tainted.add(e.name)
            if e.verdict == "MISMATCH":
                out[i] = dataclasses.replace(e, role="inherits", mark=f"inherits the error of {head.name}")
        elif e.verdict == "MISMATCH":
            out[i] = dataclasses.replace(e, role="own", mark=f"wrong on its own, not computed from "
                                                             f"{head.name}: a second mistake?")
    return out


def _fd_line(line: oracles.Line) -> str:
    """The finite difference's opinion on a parameter's gradient line."""
    f = line.fd
    kinked = [tuple(int(i) for i in np.unravel_index(j, f.fd.shape)) for j in np.flatnonzero(np.isnan(f.fd))]
    if not f.exists:
        return "      fd       none: a kink within reach of the step at every element"
    error, tol = float(np.nanmax(f.error)), float(np.nanmax(f.tol))
    text = f"      fd       {_short(f.fd)}   |diff| {error:.1e} " + (
        f"<= tol {tol:.1e}" if f.agree else "exceeds its tolerance")
    if not f.agree and line.settled:
        text += f" (a second opinion; {' and '.join(line.autograd)} agree with the manual value)"
    if kinked:
        text += f"; none at {', '.join(map(str, kinked))}: a kink within reach of the step"
    return text


def _param_of(name: str, case) -> str | None:
    """The parameter whose gradient the line ``name`` is (None: an intermediate)."""
    if case.source is not None:
        return {g: p for p, g in case.source.grads.items()}.get(name)
    name = name[4:] if name.startswith("dL/d") else name
    return name if name in case.params else None


def _elements(line: oracles.Line, ctx: dict, parameter: str | None) -> list[str]:
    """A wrong line's exact / approximate / maxdiff triple, worst elements and likely mistake
    (the same reading of one array as ``run``'s: :func:`crosscheck.judging.probes.reading`)."""
    fw, auto = next(iter(line.autograd.items()))
    t = mistakes.triple(line.manual, auto, line.tol)
    out = [f"      against {fw}: bit-exact {'yes' if t['exact'] else 'no'}, within tolerance "
           f"{'yes' if t['approximate'] else 'no'}, largest difference {t['maxdiff']:.3g}"]
    for row in mistakes.worst_elements(line.manual, line.autograd, n=3):
        values = "  ".join(f"{k} {row[k]:.6g}" for k in ("manual", *line.autograd))
        # Where autograd is exactly 0 (a dead unit) a relative error has no meaning.
        err = (f"rel. err {row['rel_err']:.3g}" if row["rel_err"] is not None else
               f"abs. err {row['abs_err']:.3g} (autograd is exactly 0)")
        out.append(f"      at {tuple(row['index'])}: {values}  {err}")
    why = probes.reading(ctx, line.name, line.manual, auto, line.tol, parameter)
    out.append(f"      likely: {why.text}")
    return out


def _step_reading(lines: list[oracles.Line], wrong: list[oracles.Line], traj: Trajectory, c,
                  step: int) -> mistakes.Explanation | None:
    """The step's likely mistake, as ``run`` names it (:func:`crosscheck.judging.probes.read_step`),
    from the parameter lines: the wrong ones read, the others as context; the first
    framework's autograd is the one judged, and the frameworks' autograds must agree for a
    kink to be named."""
    params = {p: line for line in lines if (p := _param_of(line.name, c)) is not None and line.autograd}
    wrong_params = [p for p, line in params.items() if line in wrong]
    if not wrong_params or set(params) != set(traj.param_names):
        return None
    fw = next(iter(next(iter(params.values())).autograd))
    tol = max(params[p].tol for p in wrong_params)

    def referees_agree() -> bool:
        return all(_close(line.autograd[fw], line.autograd[other], line)
                   for line in params.values() for other in line.autograd if other != fw)
    manual = {p: line.manual for p, line in params.items()}
    autograd = {p: line.autograd[fw] for p, line in params.items()}
    previous = None
    if step:   # autograd's gradient of the step before (stale parameters), as run reads it
        from crosscheck import frameworks

        before = {n: v[step - 1] for n, v in traj.params.items()}
        problem = c.problem(**metrics.rerun_overrides(traj, c))
        previous = frameworks.gradients(fw, problem, before, oracles.sample_of(traj, step - 1))["params"]
    chosen, _ = probes.read_step(traj, c, step, manual, autograd, tol, wrong_params, referees_agree,
                                 framework=fw, previous=previous)
    return chosen


def _close(a: np.ndarray, b: np.ndarray, line: oracles.Line) -> bool:
    """Two autograds' values of a line within its tolerance of each other (on its scale)."""
    scale = line.scale or float(np.max(np.abs(a), initial=0.0)) or 1.0
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b)), initial=0.0)) / scale <= line.tol


def _summary(verdicts: dict[str, bool]) -> str:
    """``8 of 8 checked lines agree``, or ``2 of 8 checked lines MISMATCH: first dL_dW1``
    (a local derivative has no autograd value: it is shown, not checked)."""
    bad = [name for name, good in verdicts.items() if not good]
    n = len(verdicts)
    if not bad:
        return f"{n} of {n} checked lines agree"
    return f"{len(bad)} of {n} checked lines MISMATCH: first {bad[0]}"
