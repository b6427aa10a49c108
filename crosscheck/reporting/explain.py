"""``crosscheck explain``: why each manual gradient line is right (or where it is not).

For one update step it prints every line of the manual backward in order (a document's
lines as written, or a user's model's hand-written intermediates and parameter gradients),
with the value the hand-written code computes, autograd's gradient of the loss with respect to
the same tensor in torch and in JAX, the finite difference where one exists (parameter
gradients), and a verdict per line.
"""

from __future__ import annotations

import numpy as np

from crosscheck import tolerances
from crosscheck.declaring import cases
from crosscheck.judging import oracles
from crosscheck.running.record import Trajectory


def _short(v: np.ndarray, n: int = 4) -> str:
    flat = np.asarray(v, np.float64).ravel()
    body = ", ".join(f"{x:.6g}" for x in flat[:n])
    more = f", ... ({flat.size} values)" if flat.size > n else ""
    return f"[{body}{more}]" if flat.size != 1 or np.ndim(v) else body


def render(traj: Trajectory, step: int) -> tuple[str, bool]:
    """The teaching view of ``traj`` at ``step``, and whether every line agrees.

    The header's verdict and the closing summary are counted from the lines below them.
    """
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
    body, verdicts = [], {}
    for line in oracles.chain(traj, step):
        body.append(f"  {line.text}")
        body.append(f"      manual   {_short(line.manual)}")
        if line.kind == "local":
            body.append("      (a local derivative, not a gradient of the loss: autograd has no "
                        "value for it; it enters the lines below)")
            continue
        for fw, err in line.errors().items():
            body.append(f"      {fw:<8} {_short(line.autograd[fw])}   max rel. diff {err:.1e}"
                        + ("" if err <= line.tol else f" > tol {line.tol:.1e}"))
        if line.extended:
            body.append("      (its own float64 rounding: the same code in extended precision agrees "
                        "with autograd)")
        good = line.verdict == "agree"
        if not good:
            body.extend(_elements(line, traj, step))
        f = line.fd
        if f is not None:
            body.append(_fd_line(line))
            good &= f.agree or line.settled
        else:
            body.append("      fd       - (an intermediate, not a parameter)")
        body.append(f"      verdict  {'agree' if good else 'MISMATCH'}")
        verdicts[line.name] = good
    summary = _summary(verdicts)
    origin = f"of {c.document} ({c.cell})" if c.document else f"of the model ({c.origin or 'in Python'})"
    out = [f"{traj.case}: the manual backward {origin}, step {step} ({where})",
           "params: " + "  ".join(f"{k}={_short(v[step])}" for k, v in traj.params.items()),
           f"loss at this step: {traj.step_loss[step]:.10g}",
           f"criterion: autograd within {tolerances.STEP_RTOL:.1e} (normwise, one step, relative to the "
           "largest value so far) plus what a 1-ulp move of the parameters moves the line by; "
           "finite differences within their derived tolerance (a second opinion where two autograds "
           "agree with the manual value)",
           f"verdict: {summary}", "", *body, "", summary]
    return "\n".join(out), all(verdicts.values())


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


def _elements(line: oracles.Line, traj: Trajectory, step: int) -> list[str]:
    """A wrong line's exact / approximate / maxdiff triple, worst elements and likely mistake."""
    from crosscheck.judging import mistakes

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
    from crosscheck.declaring import cases
    from crosscheck.judging import local

    batch, outputs = mistakes.sizes(traj, step)
    case = cases.get(traj.case)
    name = line.name[4:] if line.name.startswith("dL/d") else line.name
    value = traj.params[name][step] if name in traj.params else None
    penalty = None
    if value is not None and case.penalty_gradient is not None:
        penalty = case.penalty_gradient({n: v[step] for n, v in traj.params.items()}).get(name)
    why = mistakes.explain(line.name, line.manual, auto, tol=line.tol, batch=batch, outputs=outputs,
                           zeros=local.exact_zeros(case, traj, step), units=local.units_off(case, traj, step),
                           value=value, penalty=penalty, parameter=name if value is not None else None)
    out.append(f"      likely: {why.text}")
    return out


def _summary(verdicts: dict[str, bool]) -> str:
    """``8 of 8 checked lines agree``, or ``2 of 8 checked lines MISMATCH: first dL_dW1``
    (a local derivative has no autograd value: it is shown, not checked)."""
    bad = [name for name, good in verdicts.items() if not good]
    n = len(verdicts)
    if not bad:
        return f"{n} of {n} checked lines agree"
    return f"{len(bad)} of {n} checked lines MISMATCH: first {bad[0]}"
