"""Optimizers a model declares (``Model(optimizer=...)``), with torch.optim's semantics.

A declaration is data: the settings of one update rule. It is never run by code of ours:
torch runs it as ``torch.optim``'s optimizer and JAX as optax's, each configured to the
declared convention where its options allow. Where they do not, that framework's leg is
"cannot express: ..." (:meth:`Optimizer.cannot`), never agree and never the user's mistake.
The reference runs the model's own ``update=`` where it declares one (the code under test),
and otherwise the first framework's optimizer that expresses the declaration.

Adding an optimizer is one class here: its settings, its torch.optim and optax builders,
and what either cannot express. :data:`CONVENTIONS` is the table of where torch.optim and
optax differ, recorded with the versions it was measured on (``tests/test_optim.py``
checks every row: the options given agree to rounding, and a difference said to remain
does remain).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any


@dataclasses.dataclass(frozen=True)
class Optimizer:
    """One update rule's settings. Subclasses say how torch.optim and optax run it."""

    #: torch.optim's class name (optax's function is named in ``optax_transform``).
    torch_name = ""

    def __post_init__(self) -> None:
        """Settings checked as torch.optim checks them, each a ``ValueError`` of one line
        (``Model`` says it as a ``ModelError``); ``betas`` kept as a tuple (a declaration is
        hashed: the compiled JAX loop is keyed by it)."""
        name = type(self).__name__
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if f.name == "betas":
                if not (isinstance(v, (tuple, list)) and len(v) == 2
                        and all(_real(b) and 0 <= b < 1 for b in v)):
                    raise ValueError(f"{name}: betas must be two numbers in [0, 1), got {v!r}")
                object.__setattr__(self, "betas", tuple(float(b) for b in v))
            elif isinstance(f.default, bool):
                if not isinstance(v, bool):
                    raise ValueError(f"{name}: {f.name} must be True or False, got {v!r}")
            elif not (_real(v) and v >= 0):
                raise ValueError(f"{name}: {f.name} must be a number >= 0, got {v!r}")
        if getattr(self, "nesterov", False) and (self.momentum <= 0 or self.dampening != 0):
            raise ValueError(f"{name}: nesterov needs a momentum above 0 and no dampening")

    @property
    def plain(self) -> bool:
        """The plain update ``p - lr * g`` (run as written, bitwise, everywhere)."""
        return False

    def cannot(self, framework: str) -> str | None:
        """Why ``framework``'s own optimizer cannot run this declaration (None: it can)."""
        return None

    def memory(self, step: int) -> float:
        """For how many steps the rule's state carries a step's rounding (see
        :func:`crosscheck.tolerances.update_rtol`), at most the ``step + 1`` steps so far."""
        return 1.0

    def _carried(self, step: int, *decays: float) -> float:
        return float(min(step + 1, 1 + sum(1 / (1 - d) for d in decays if d < 1)))

    def factors(self, step: int) -> dict[str, float]:
        """Named factors a wrong hand-written update is often off by at ``step`` (0-based),
        for the likely mistake: name -> the manual step over the optimizer's."""
        return {}

    def torch_kwargs(self) -> dict[str, Any]:
        raise NotImplementedError

    def optax_transform(self, lr: float) -> Any:
        raise NotImplementedError

    def describe(self) -> str:
        fields = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in dataclasses.fields(self)
                           if getattr(self, f.name) != f.default)
        return f"{type(self).__name__}({fields})"

    def as_dict(self) -> dict[str, Any]:
        return {"name": type(self).__name__, **dataclasses.asdict(self)}

    # ------------------------------------------------------------------ the frameworks' own
    def for_torch(self, params: list, lr: float) -> Any:
        """This rule as a ``torch.optim`` optimizer of ``params`` (float64 tensors)."""
        import torch

        why = self.cannot("torch")
        if why:
            raise CannotExpress("torch", why)
        return getattr(torch.optim, self.torch_name)(params, lr=lr, foreach=False, **self.torch_kwargs())

    def for_jax(self, lr: float) -> Any:
        """This rule as an optax gradient transformation."""
        why = self.cannot("jax")
        if why:
            raise CannotExpress("jax", why)
        return self.optax_transform(lr)


def _real(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


class CannotExpress(Exception):
    """A framework whose own optimizer has no option for the declared convention."""

    def __init__(self, framework: str, why: str) -> None:
        super().__init__(framework, why)
        self.framework, self.why = framework, why

    def __str__(self) -> str:
        return f"cannot express: {self.why}"


def _optax() -> Any:
    import optax

    return optax


def _decayed(transform: Any, weight_decay: float) -> Any:
    """torch.optim's ``weight_decay`` (an L2 term ``wd * p`` added to the gradient first)."""
    optax = _optax()
    return optax.chain(optax.add_decayed_weights(weight_decay), transform) if weight_decay else transform


@dataclasses.dataclass(frozen=True)
class SGD(Optimizer):
    """``torch.optim.SGD``: with momentum ``buf = momentum * buf + (1 - dampening) * g``
    (``buf = g`` at the first step), ``p -= lr * buf`` (Nesterov: ``g + momentum * buf``)."""

    momentum: float = 0.0
    dampening: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    torch_name = "SGD"

    @property
    def plain(self) -> bool:
        return not (self.momentum or self.weight_decay)

    def cannot(self, framework: str) -> str | None:
        if framework == "jax" and self.dampening and self.momentum:
            return ("optax's sgd has no dampening (its trace is g + momentum * t); torch.optim's SGD "
                    "scales g by 1 - dampening after the first step")
        return None

    def memory(self, step: int) -> float:
        return self._carried(step, self.momentum)

    def torch_kwargs(self) -> dict[str, Any]:
        return {"momentum": self.momentum, "dampening": self.dampening, "nesterov": self.nesterov,
                "weight_decay": self.weight_decay}

    def optax_transform(self, lr: float) -> Any:
        return _decayed(_optax().sgd(lr, momentum=self.momentum or None, nesterov=self.nesterov),
                        self.weight_decay)


@dataclasses.dataclass(frozen=True)
class Adam(Optimizer):
    """``torch.optim.Adam``: bias-corrected moments, ``eps`` outside the square root;
    ``weight_decay`` an L2 term added to the gradient."""

    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    amsgrad: bool = False
    torch_name = "Adam"

    def cannot(self, framework: str) -> str | None:
        if framework == "jax" and self.amsgrad:
            return ("optax's amsgrad keeps the maximum of the bias-corrected second moment; "
                    "torch.optim's the maximum of the raw one, corrected afterwards")
        return None

    def torch_kwargs(self) -> dict[str, Any]:
        return {"betas": tuple(self.betas), "eps": self.eps, "weight_decay": self.weight_decay,
                "amsgrad": self.amsgrad}

    def memory(self, step: int) -> float:
        return self._carried(step, *self.betas)

    def factors(self, step: int) -> dict[str, float]:
        b1, b2 = self.betas
        t = step + 1
        return {"the bias correction of both moments is missing": math.sqrt(1 - b2 ** t) / (1 - b1 ** t),
                "the first moment's bias correction is missing": 1 - b1 ** t,
                "the second moment's bias correction is missing": math.sqrt(1 - b2 ** t)}

    def optax_transform(self, lr: float) -> Any:
        b1, b2 = self.betas
        return _decayed(_optax().adam(lr, b1=b1, b2=b2, eps=self.eps), self.weight_decay)


@dataclasses.dataclass(frozen=True)
class AdamW(Optimizer):
    """``torch.optim.AdamW``: Adam with decoupled weight decay ``p -= lr * wd * p``."""

    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 1e-2
    amsgrad: bool = False
    torch_name = "AdamW"

    cannot = Adam.cannot
    torch_kwargs = Adam.torch_kwargs
    memory = Adam.memory
    factors = Adam.factors

    def optax_transform(self, lr: float) -> Any:
        b1, b2 = self.betas
        return _optax().adamw(lr, b1=b1, b2=b2, eps=self.eps, weight_decay=self.weight_decay)


@dataclasses.dataclass(frozen=True)
class RMSprop(Optimizer):
    """``torch.optim.RMSprop``: ``v = alpha * v + (1 - alpha) * g**2``, the step
    ``g / (sqrt(v) + eps)`` (centered: ``sqrt(v - mean**2)``), then momentum on the step."""

    alpha: float = 0.99
    eps: float = 1e-8
    momentum: float = 0.0
    centered: bool = False
    torch_name = "RMSprop"

    def torch_kwargs(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "eps": self.eps, "momentum": self.momentum, "centered": self.centered}

    def memory(self, step: int) -> float:
        return self._carried(step, self.alpha, self.momentum)

    def optax_transform(self, lr: float) -> Any:
        # optax puts eps inside the square root by default; eps_in_sqrt=False is torch's.
        return _optax().rmsprop(lr, decay=self.alpha, eps=self.eps, eps_in_sqrt=False,
                                centered=self.centered, momentum=self.momentum or None)


@dataclasses.dataclass(frozen=True)
class Adagrad(Optimizer):
    """``torch.optim.Adagrad``: ``sum += g**2``, the step ``g / (sqrt(sum) + eps)``.
    ``eps_inside_sqrt=True`` declares ``g / sqrt(sum + eps)`` instead (optax's convention,
    and much hand-written code's, e.g. ``np.sqrt(mem + 1e-8)``)."""

    eps: float = 1e-10
    initial_accumulator_value: float = 0.0
    eps_inside_sqrt: bool = False
    torch_name = "Adagrad"

    def cannot(self, framework: str) -> str | None:
        if framework == "jax" and not self.eps_inside_sqrt:
            return ("optax's adagrad adds eps inside the square root, sqrt(sum + eps), and has no option "
                    "for the declared sqrt(sum) + eps")
        return None

    def torch_kwargs(self) -> dict[str, Any]:
        if self.eps_inside_sqrt:   # sqrt(sum + eps) is sqrt of a sum that starts eps higher, plus 0
            return {"eps": 0.0, "initial_accumulator_value": self.initial_accumulator_value + self.eps}
        return {"eps": self.eps, "initial_accumulator_value": self.initial_accumulator_value}

    def memory(self, step: int) -> float:
        return float(step + 1)   # the sum of every step's squares

    def optax_transform(self, lr: float) -> Any:
        return _optax().adagrad(lr, initial_accumulator_value=self.initial_accumulator_value, eps=self.eps)


#: Every optimizer a model can declare, by name.
OPTIMIZERS: dict[str, type[Optimizer]] = {c.__name__: c for c in (SGD, Adam, AdamW, RMSprop, Adagrad)}

#: Where torch.optim and optax differ, and what is done about it: (optimizer, setting,
#: torch.optim's convention, optax's, how each is configured), measured on torch 2.13.0 and
#: optax 0.2.8 (``tests/test_optim.py``).
CONVENTIONS_VERSIONS = {"torch": "2.13.0", "optax": "0.2.8"}
CONVENTIONS: tuple[tuple[str, str, str, str, str], ...] = (
    ("RMSprop", "eps", "sqrt(v) + eps", "sqrt(v + eps) by default",
     "optax: eps_in_sqrt=False (torch's)"),
    ("Adagrad", "eps", "sqrt(sum) + eps", "sqrt(sum + eps)",
     "declared by eps_inside_sqrt. Inside: torch.optim with eps=0 and the accumulator started eps "
     "higher. Outside: optax has no option, and cannot express it"),
    ("Adagrad", "initial_accumulator_value", "0 by default", "0.1 by default",
     "both given the declared value"),
    ("Adam", "weight_decay", "wd * p added to g", "no option (adamw is decoupled)",
     "optax: add_decayed_weights(wd) chained before adam"),
    ("Adam", "amsgrad", "max of the raw v, then corrected", "max of the corrected v",
     "optax cannot express torch's"),
    ("AdamW", "weight_decay", "p *= 1 - lr * wd, before the step", "- lr * wd * p added to the update",
     "the same update up to rounding"),
    ("SGD", "dampening", "(1 - dampening) * g after the first step", "no option", "optax cannot express it"),
    ("SGD", "momentum", "buf = m * buf + g; p -= lr * buf", "t = g + m * t; p -= lr * t",
     "the same update"),
)


def reference_update(optimizer: Optimizer, lr: float,
                     frameworks: tuple[str, ...] | None = None) -> tuple[Callable[..., Any], str]:
    """The declared rule as ``update(params, grads, state) -> (params, state)`` on NumPy
    arrays, run by the first of ``frameworks`` (default: every registered one, in order)
    whose optimizer expresses it and that can be imported (the reference of a model that
    declares ``optimizer=`` and no ``update=``); and that framework's name. Where none can,
    the last :class:`~crosscheck.frameworks.FrameworkUnavailable` (exit 3, naming it)."""
    from crosscheck.frameworks import FrameworkUnavailable, load
    from crosscheck.frameworks.registry import FRAMEWORKS

    frameworks = FRAMEWORKS if frameworks is None else frameworks
    unavailable = None
    for fw in frameworks:
        if optimizer.cannot(fw) is None:
            try:   # imported and checked on first use as every framework is
                return load(fw).reference_update(optimizer, lr), fw
            except FrameworkUnavailable as e:   # the next framework that can express it, if any
                unavailable = e
    if unavailable is not None:
        raise unavailable
    raise CannotExpress(frameworks[0], optimizer.cannot(frameworks[0]) or "")
