"""The frameworks the reference is checked against: one :class:`Framework` each, in
:data:`REGISTRY`, read by the command line, kinks, the plots, the versions line, the report
and the tests. Nothing here imports a framework.

A framework is one models module (``train``, ``gradients``, ``smoke``, ``relu_spellings``,
``derivative``, ``reference_update``: see ``torch_models.py``) and one line below.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any


@dataclasses.dataclass(frozen=True)
class Framework:
    """One framework's facts: where its code is, what names its versions, how its own
    optimizer library runs a declared optimizer, and how the plots draw it."""

    name: str
    #: Import path of its models module.
    module: str
    #: The distributions named for it in the versions line (and recorded with baselines).
    packages: tuple[str, ...]
    #: Its optimizer library, as a message names it ("manual ... vs torch.optim ...").
    optimizer_library: str
    #: Its line in the loss and errors plots (matplotlib keywords), and its marker.
    style: Mapping[str, Any]
    marker: str
    #: Run in the main process while the helper computes the others, under its module's
    #: ``beside_helper()`` (one thread fewer); the rest go to the helper.
    runs_here: bool = False

    def import_module(self) -> ModuleType:
        """Its models module, imported (no first-use check: :func:`crosscheck.frameworks.load`)."""
        return importlib.import_module(self.module)

    def reference_update(self, optimizer: Any, lr: float) -> Callable[..., Any]:
        """The declared rule run by this framework's optimizer on NumPy arrays:
        ``update(params, grads, state) -> (params, state)``."""
        from crosscheck.frameworks import load

        return load(self.name).reference_update(optimizer, lr)


#: Every framework, in the order they run and are shown.
REGISTRY: dict[str, Framework] = {f.name: f for f in (
    Framework("torch", "crosscheck.frameworks.torch_models", ("torch",), "torch.optim",
              dict(color="tab:red", lw=1.0, ls="--"), "x", runs_here=True),
    Framework("jax", "crosscheck.frameworks.jax_models", ("jax", "jaxlib"), "optax",
              dict(color="tab:blue", lw=1.0, ls=":"), "+"),
)}

#: Their names, in order.
FRAMEWORKS: tuple[str, ...] = tuple(REGISTRY)
