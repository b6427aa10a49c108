"""ReLU at exactly 0: how each spelling differentiates its kink.

A ReLU can be written many ways; away from 0 they agree, at exactly 0 their derivatives
differ. The documents use ``(x > 0)``: derivative 0 at 0. :func:`table` measures, with
the installed torch and JAX, each spelling's derivative at exactly 0;
:func:`kink_gradients` runs one step of the case that declares a kink start
(:func:`kink_case`), where pre-activations hit exactly 0 with a nonzero upstream
gradient, with each spelling for every ReLU, and :func:`table` shows which give the
reference's gradients there.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from crosscheck import tolerances

#: The reference's convention: derivative of ReLU at exactly 0.
REFERENCE_AT_ZERO = 0.0


def kink_case():
    """The document case that declares a kink start (:class:`crosscheck.cases.Kink`)."""
    from crosscheck import cases

    return next(c for c in cases.CASES.values() if c.kink is not None)


def torch_spellings() -> dict[str, Callable]:
    import torch
    import torch.nn.functional as F

    return {
        "torch.relu(x)": torch.relu,
        "F.relu(x)": F.relu,
        "x.clamp(min=0)": lambda t: t.clamp(min=0),
        "torch.maximum(x, 0)": lambda t: torch.maximum(t, torch.zeros_like(t)),
        "torch.where(x > 0, x, 0)": lambda t: torch.where(t > 0, t, torch.zeros_like(t)),
        "x * (x > 0)  [models]": lambda t: _relu(t),
    }


def jax_spellings() -> dict[str, Callable]:
    import jax
    import jax.numpy as jnp

    import crosscheck.frameworks.jax_models  # noqa: F401  (x64 on)

    return {
        "jax.nn.relu(x)": jax.nn.relu,
        "jnp.maximum(x, 0)": lambda t: jnp.maximum(t, 0.0),
        "jnp.where(x > 0, x, 0)": lambda t: jnp.where(t > 0, t, 0.0),
        "jnp.clip(x, 0)": lambda t: jnp.clip(t, 0.0),
        "x * (x > 0)  [models]": lambda t: _relu(t),
    }


def _relu(t):
    """The spelling the models' forwards use (``reference._common.relu``)."""
    from array_api_compat import array_namespace

    from crosscheck.reference._common import relu

    return relu(array_namespace(t), t)


def _torch_grad(fn, x):
    import torch

    t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    fn(t).sum().backward()
    return t.grad.numpy()


def _jax_grad(fn, x):
    import jax
    import jax.numpy as jnp

    return np.asarray(jax.grad(lambda t: jnp.sum(fn(t)))(jnp.asarray(x, jnp.float64)))


@dataclasses.dataclass(frozen=True)
class Row:
    framework: str
    spelling: str
    at_zero: float
    agrees: bool                      # with the reference's derivative at 0
    kink_case_agrees: bool | None = None
    kink_case_error: float | None = None

    @property
    def kink_case_text(self) -> str:
        """``agrees (2.3e-16)``, ``DIFFERS (1.1e-01)``, or ``-`` (not run on the kink case)."""
        if self.kink_case_agrees is None:
            return "-"
        return f"{'agrees' if self.kink_case_agrees else 'DIFFERS'} ({self.kink_case_error:.1e})"


def derivatives_at_zero() -> list[Row]:
    rows = [Row("numpy", "(x > 0).astype(float)  [reference]", float(np.float64(0.0) > 0), True)]
    for fw, spellings, grad in (("torch", torch_spellings(), _torch_grad),
                                ("jax", jax_spellings(), _jax_grad)):
        for name, fn in spellings.items():
            d = float(grad(fn, np.zeros(1))[0])
            rows.append(Row(fw, name, d, d == REFERENCE_AT_ZERO))
    return rows


def kink_gradients() -> tuple[dict[str, np.ndarray], dict[tuple[str, str], dict[str, np.ndarray]]]:
    """One step of the kink case from its kink start: the reference's manual gradients, and
    autograd's with each spelling used for every ReLU of its forward."""
    from crosscheck import frameworks

    case = kink_case()
    ref = case.run_reference(epochs=1, init=case.kink.init)
    manual = {k: v[0] for k, v in ref.grads.items()}
    problem = case.problem(epochs=1, init=case.kink.init)
    out = {}
    for fw, spellings in (("torch", torch_spellings()), ("jax", jax_spellings())):
        for name, fn in spellings.items():
            forward = case.kink.forward_with(lambda xp, t, fn=fn: fn(t))
            g = frameworks.gradients(fw, dataclasses.replace(problem, forward=forward), problem.init)
            out[fw, name] = g["params"]
    return manual, out


def table() -> list[Row]:
    """Derivative at 0 of every spelling, and whether it reproduces the reference's
    gradients on the kink case (normwise, one step: ``tolerances.STEP_RTOL``)."""
    manual, autograd = kink_gradients()
    rows = []
    for r in derivatives_at_zero():
        if r.framework == "numpy":
            rows.append(r)
            continue
        g = autograd[r.framework, r.spelling]
        err = max(float(np.max(np.abs(g[k] - manual[k]))) / (float(np.max(np.abs(manual[k]))) or 1.0)
                  for k in manual)
        rows.append(dataclasses.replace(r, kink_case_agrees=err <= tolerances.STEP_RTOL, kink_case_error=err))
    return rows
