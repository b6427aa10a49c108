"""``crosscheck explain``: why each manual gradient line is right (or where it is not).

For one update step it prints every line of the document's manual backward in order,
with the value the document computes, autograd's gradient of the loss with respect to
the same tensor in torch and in JAX, the finite difference where one exists (parameter
gradients), and a verdict per line.
"""

from __future__ import annotations

import numpy as np

from crosscheck import cases, oracles, tolerances
from crosscheck.record import Trajectory


def _short(v: np.ndarray, n: int = 4) -> str:
    flat = np.asarray(v, np.float64).ravel()
    body = ", ".join(f"{x:.6g}" for x in flat[:n])
    more = f", ... ({flat.size} values)" if flat.size > n else ""
    return f"[{body}{more}]" if flat.size != 1 or np.ndim(v) else body


def render(traj: Trajectory, step: int) -> tuple[str, bool]:
    """The teaching view of ``traj`` at ``step``, and whether every line agrees."""
    c = cases.get(traj.case)
    sample = oracles.sample_of(traj, step)
    per_epoch = traj.steps // traj.epochs
    where = (f"epoch {step // per_epoch}, sample {sample}" if sample is not None else f"epoch {step}")
    lines = oracles.chain(traj, step)
    out = [f"{traj.case}: the manual backward of {c.document} ({c.cell}), step {step} ({where})",
           "params: " + "  ".join(f"{k}={_short(v[step])}" for k, v in traj.params.items()),
           f"loss at this step: {traj.step_loss[step]:.10g}",
           f"verdict: autograd within {tolerances.STEP_RTOL:.1e} (normwise, one step); "
           "finite differences within their derived tolerance", ""]
    ok = True
    for line in lines:
        out.append(f"  {line.text}")
        out.append(f"      manual   {_short(line.manual)}")
        if line.kind == "local":
            out.append("      (a local derivative, not a gradient of the loss: autograd has no "
                       "value for it; it enters the lines below)")
            continue
        for fw, err in line.errors().items():
            out.append(f"      {fw:<8} {_short(line.autograd[fw])}   max rel. diff {err:.1e}")
        good = line.verdict == "agree"
        f = line.fd
        if f is not None:
            if f.exists:
                out.append(f"      fd       {_short(f.fd)}   |diff| {float(np.nanmax(f.error)):.1e} "
                           f"<= tol {float(np.nanmax(f.tol)):.1e}" if f.agree else
                           f"      fd       {_short(f.fd)}   |diff| {float(np.nanmax(f.error)):.1e} "
                           "exceeds its tolerance")
                good &= f.agree
            else:
                out.append("      fd       none: a ReLU kink lies within reach of the step")
        else:
            out.append("      fd       - (an intermediate, not a parameter)")
        out.append(f"      verdict  {'agree' if good else 'MISMATCH'}")
        ok &= good
    return "\n".join(out), ok
