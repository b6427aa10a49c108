"""Check your own hand-written backprop: a :class:`Model` is declared once, and everything
(the reference run, the framework runs, both questions of the comparison, the diagnostics,
``explain``, the plots and the baselines) is derived from it.

A model is data, a forward pass and a loss written once against the array namespace
``xp`` (NumPy's, torch's or JAX's, from array-api-compat), and the NumPy backward under
test. The reference run is the model's own: the NumPy forward and loss (plus any penalty),
the hand-written ``backward``, and the update: ``p - lr * grad`` on every parameter after all
gradients are taken, the hand-written ``update``, or the declared optimizer as a framework
runs it. The frameworks run the same forward and loss with autograd's gradients and their
own optimizers, over the same batches and noise (:mod:`crosscheck.declaring.loop`).

Everything a user can get wrong in the declaration is a :class:`ModelError`: one line that
names the model and what to change (exit code 2 on the command line).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.util
import inspect
import math
import numbers
import os
import re
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from crosscheck import optim, tolerances
from crosscheck.declaring import cases
from crosscheck.declaring.cases import Case
from crosscheck.declaring.loop import At, Feed, Loop, make_feed, take
from crosscheck.declaring.problem import Problem, keep, make, recording
from crosscheck.running import interrupts
from crosscheck.running.record import Recorder, Trajectory

BATCHES = ("full", "sample")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")


class ModelError(ValueError):
    """A model that cannot be checked as declared: the message says why, in one line."""


class NoModel(ModelError):
    """A file that defines no :class:`Model` (skipped where a folder is searched)."""


@functools.cache
def _numpy_xp() -> Any:
    from array_api_compat import array_namespace

    return array_namespace(np.zeros(0))


def _returned(out: Any) -> tuple[Any, Any]:
    """What a backward returned: ``grads``, or ``(grads, intermediates)``."""
    return out if isinstance(out, tuple) and len(out) == 2 else (out, {})


def _float_array(model: str, what: str, value: Any) -> np.ndarray:
    try:
        a = np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ModelError(f"[{model}] {what} is not a numeric array ({e})") from None
    if not np.all(np.isfinite(a)):
        raise ModelError(f"[{model}] {what} holds NaN or inf")
    return a


def _positive_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 1


def _changed(first: Mapping[str, Any], again: Mapping[str, Any]) -> str | None:
    """The first name whose array differs between two calls that should give the same (None:
    none does): a user's function that keeps state between calls."""
    return next((k for k in first if not np.array_equal(first[k], again[k], equal_nan=True)), None)


def _seed(v: Any) -> bool:
    """A seed for ``numpy.random.default_rng``: an int, 0 or more (never a bool)."""
    return isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= 0


def _samples(a: np.ndarray, axis: int) -> int:
    """How many samples ``a`` holds along ``axis`` (a 1-D array: along its only axis)."""
    return int(a.shape[axis if a.ndim > 1 else 0]) if a.ndim else 0


def _shape(a: Any) -> tuple[int, ...]:
    return tuple(np.shape(a))


def where_in(e: BaseException, *files: str | None) -> str:
    """``FILE:LINE: ``, the deepest line of ``files`` (a user's model file) in ``e``'s
    traceback, to start a message with as compilers do; "" where none is in it."""
    import traceback

    wanted = {str(Path(f).resolve()) for f in files if f}
    lines = [t for t in traceback.extract_tb(e.__traceback__) if str(Path(t.filename).resolve()) in wanted]
    if not lines:
        return ""
    shown = os.path.relpath(lines[-1].filename)   # as a user names it, from where they are
    return f"{lines[-1].filename if shown.startswith('..') else shown}:{lines[-1].lineno}: "


def _file_of(fn: Callable[..., Any]) -> str | None:
    code = getattr(fn, "__code__", None)
    return code.co_filename if code is not None else None


# One validator per setting, shared by Model, check() and the command line, so that each
# says the same thing wherever the value comes from.
def bad_lr(value: Any) -> str | None:
    """Why ``value`` cannot be a learning rate (None: it can)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (
            math.isfinite(value) and value > 0):
        return f"must be a positive finite number, got {value!r}"
    return None


def bad_epochs(value: Any) -> str | None:
    """Why ``value`` cannot be a number of epochs (None: it can)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        return f"must be a positive integer, got {value!r}"
    return None


def _broadcast_trap(pred: tuple[int, ...], y: tuple[int, ...]) -> tuple[int, ...] | None:
    """The shape an elementwise loss of a prediction and target of these shapes would
    silently take where it is larger than both (``(m,)`` against ``(m, 1)`` gives
    ``(m, m)``: every prediction against every target); None where no such trap is set.
    Shapes that do not broadcast, such as class scores ``(m, C)`` against integer labels
    ``(m,)``, differ for a reason and are left to the loss."""
    try:
        both = np.broadcast_shapes(pred, y)
    except ValueError:
        return None
    return both if math.prod(both) > max(math.prod(pred), math.prod(y)) else None


@dataclasses.dataclass(frozen=True, eq=False)
class Model:
    """A user's model and its hand-written backward.

    Attributes:
        name: the model's name in the report, the JSON, the plots and the baselines.
        x: training inputs, samples along axis ``sample_axis`` (converted to float64).
        y: training targets, samples along the same axis: floats (converted to float64), or
            integer class labels (kept as integers).
        init: parameter name -> initial value; the order is kept.
        forward: ``forward(xp, params, x) -> prediction``, written once against ``xp``. It
            may take ``tap=`` (``tap(name, t)`` returns ``t``) to name intermediates.
        loss: ``loss(xp, prediction, y) -> scalar``: what the manual gradients differentiate.
        backward: ``backward(params, x, y) -> {name: gradient}``, NumPy: the code under test.
            With a tapping forward it may return ``(grads, {tap name: dL/d tap})``.
        lr: the learning rate (the plain update ``p - lr * grad``, or the declared optimizer's):
            needed for a training run
            ([`crosscheck.check`][crosscheck.api.check]), not for the gradient at points alone
            ([`crosscheck.check_gradient`][crosscheck.points.check_gradient]).
        epochs: how many epochs: needed for a training run, as ``lr`` is.
        batch: ``"full"``, one update per epoch on all of x; ``"sample"``, one update per
            sample on ``x[i:i + 1], y[i:i + 1]`` in order, the epoch's loss being their sum.
            Or an int ``k``: mini-batches of ``k`` consecutive samples of the epoch's order,
            the last one smaller where ``k`` does not divide the samples.
        relu: tapped pre-activations that a ReLU follows: their ``> 0`` masks are recorded,
            for the dead-unit diagnostics and the kinks of finite differences.
        summary: one line for listings (default: derived).
        shuffle: None (the data's order) or a seed: one ``numpy.random.default_rng(shuffle)``
            makes each epoch's ``permutation(m)``, the same index arrays for every implementation.
        penalty: ``penalty(xp, params) -> scalar`` added to the loss (an L2 term); ``backward``
            returns the gradient of the loss plus the penalty.
        optimizer: the update rule, with ``lr`` its learning rate: a
            [`crosscheck.optim`][crosscheck.optim] declaration (default ``SGD()``, ``p - lr * g``).
            torch runs it as ``torch.optim``'s and JAX as optax's.
        update: the hand-written optimizer under test, ``update(params, grads, state) ->
            (params, state)``, ``state`` starting as ``{}``: the reference's update, and checked at
            every step against ``optimizer`` as torch.optim and optax run it.
        noise: ``noise(rng, x) -> {name: array}``, called once per step with the step's batch
            (dropout masks), drawing from one ``numpy.random.default_rng(seed)``; the forward and
            the backward get ``noise=`` that step's arrays.
        seed: the noise's seed.
        state: initial carried state ``{name: array}`` (running statistics, a hidden state): the
            forward gets ``state=`` and returns ``(prediction, new_state)``; the backward gets the
            state at the step's start. Its trajectory is compared like the parameters'.
        sample_axis: the samples' axis of x and y: 0, or 1 for samples in columns (a 1-D y has
            its samples along its only axis). Integer y (class labels) keeps its dtype.
    """

    name: str
    x: Any
    y: Any
    init: Mapping[str, Any]
    forward: Callable[..., Any]
    loss: Callable[..., Any]
    backward: Callable[..., Any]
    lr: float | None = None
    epochs: int | None = None
    batch: str | int = "full"
    relu: tuple[str, ...] = ()
    summary: str = ""
    shuffle: int | None = None
    penalty: Callable[..., Any] | None = None
    optimizer: optim.Optimizer | None = None
    update: Callable[..., Any] | None = None
    noise: Callable[..., Any] | None = None
    seed: int = 0
    state: Mapping[str, Any] | None = None
    sample_axis: int = 0

    def __post_init__(self) -> None:
        name = self.name
        if not isinstance(name, str) or not _NAME.match(name):
            raise ModelError(f"model name {name!r} must be letters, digits, _ . - (it names files)")
        for what in ("forward", "loss", "backward"):
            if not callable(getattr(self, what)):
                kind = type(getattr(self, what)).__name__
                raise ModelError(f"[{name}] {what} must be a function, got {kind}")
        for what, value, bad in (("lr", self.lr, bad_lr), ("epochs", self.epochs, bad_epochs)):
            why = None if value is None else bad(value)   # None: a model for check_gradient only
            if why:
                raise ModelError(f"[{name}] {what} {why}")
        if not (self.batch in BATCHES or _positive_int(self.batch)):
            raise ModelError(f"[{name}] batch must be one of {', '.join(map(repr, BATCHES))} or a "
                             f"positive int (samples per mini-batch), got {self.batch!r}")
        for what in ("penalty", "update", "noise"):
            if getattr(self, what) is not None and not callable(getattr(self, what)):
                kind = type(getattr(self, what)).__name__
                raise ModelError(f"[{name}] {what} must be a function, got {kind}")
        if self.shuffle is not None and not _seed(self.shuffle):
            raise ModelError(f"[{name}] shuffle must be None or an int seed (0 or more), "
                             f"got {self.shuffle!r}")
        if not _seed(self.seed):
            raise ModelError(f"[{name}] seed must be an int (0 or more), got {self.seed!r}")
        if self.optimizer is not None and not isinstance(self.optimizer, optim.Optimizer):
            known = ", ".join(f"crosscheck.optim.{k}(...)" for k in optim.OPTIMIZERS)
            raise ModelError(f"[{name}] optimizer must be one of {known}, got {self.optimizer!r}")
        if self.sample_axis not in (0, 1) or isinstance(self.sample_axis, bool):
            raise ModelError(f"[{name}] sample_axis must be 0 or 1, got {self.sample_axis!r}")
        if self.state is not None and (not isinstance(self.state, Mapping) or not self.state
                                       or not all(isinstance(k, str) for k in self.state)):
            raise ModelError(f"[{name}] state must be a non-empty dict of name -> initial array")
        if not isinstance(self.init, Mapping) or not self.init:
            raise ModelError(f"[{name}] init must be a non-empty dict of parameter name -> initial value")
        bad = [k for k in self.init if not isinstance(k, str)]
        if bad:
            raise ModelError(f"[{name}] parameter names must be strings, got {bad[0]!r}")
        if isinstance(self.relu, str) or not all(isinstance(r, str) for r in self.relu):
            raise ModelError(f"[{name}] relu must be a tuple of tap names, got {self.relu!r}")
        x, y = self.data
        axis = self.sample_axis
        if x.ndim <= axis or y.ndim < 1 or _samples(x, axis) != _samples(y, axis) or _samples(x, axis) == 0:
            raise ModelError(f"[{name}] x and y need the same number of samples along axis {axis} "
                             f"(at least 1); shapes {x.shape} and {y.shape}")
        self.params0  # noqa: B018  (converts and checks the initial values)
        self.state0  # noqa: B018

    # ------------------------------------------------------------------ derived once
    @functools.cached_property
    def data(self) -> tuple[np.ndarray, np.ndarray]:
        y = np.asarray(self.y) if not isinstance(self.y, np.ndarray) else self.y
        if y.dtype.kind in "iu":   # class labels stay integers
            return _float_array(self.name, "x", self.x), np.array(y, np.int64)
        return _float_array(self.name, "x", self.x), _float_array(self.name, "y", self.y)

    @functools.cached_property
    def general(self) -> bool:
        """Run by the general loop (:mod:`crosscheck.declaring.loop`): anything beyond the documents'
        loops (full batch or per sample, plain SGD, float data) is declared."""
        return (not isinstance(self.batch, str) or self.shuffle is not None or self.penalty is not None
                or (self.optimizer is not None and not self.optimizer.plain) or self.update is not None
                or self.noise is not None or self.state is not None or self.sample_axis != 0)

    @functools.cached_property
    def state0(self) -> dict[str, np.ndarray]:
        return {k: _float_array(self.name, f"state[{k!r}]", v) for k, v in (self.state or {}).items()}

    @property
    def samples(self) -> int:
        return _samples(self.data[0], self.sample_axis)

    @property
    def batch_size(self) -> int:
        return {"full": self.samples, "sample": 1}.get(self.batch, self.batch)  # type: ignore[arg-type]

    @property
    def declared_optimizer(self) -> optim.Optimizer:
        return self.optimizer if self.optimizer is not None else optim.SGD()

    @functools.lru_cache(maxsize=4)  # noqa: B019  (a model lives as long as its run)
    def feed(self, epochs: int) -> Feed:
        """The batches and noise of a run of ``epochs`` epochs (a shorter run's are a prefix)."""
        x = self.data[0]

        def check(step: int, drawn: Any) -> dict[str, np.ndarray]:
            if not isinstance(drawn, Mapping):
                raise ModelError(f"[{self.name}] noise must return a dict of name -> array, got "
                                 f"{type(drawn).__name__} at step {step}")
            return {k: np.asarray(v) for k, v in drawn.items()}

        try:
            return make_feed(self.samples, epochs, self.batch_size, self.shuffle, self.sample_axis, x,
                             self.noise, self.seed, check)
        except ModelError:
            raise
        except Exception as e:
            at = where_in(e, _file_of(self.noise))
            raise ModelError(f"{at}[{self.name}] noise failed: {type(e).__name__}: {e}") from e

    def loop(self, epochs: int) -> Loop:
        return Loop(feed=self.feed(epochs), state0=self.state0, penalty=self.penalty,
                    optimizer=self.declared_optimizer, noisy=self.noise is not None,
                    stateful=self.state is not None)

    @functools.cached_property
    def params0(self) -> dict[str, np.ndarray]:
        return {k: _float_array(self.name, f"init[{k!r}]", v) for k, v in self.init.items()}

    @functools.cached_property
    def taps(self) -> bool:
        """The forward takes ``tap=``."""
        try:
            parameters = inspect.signature(self.forward).parameters
        except (TypeError, ValueError):
            return False
        return "tap" in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())

    @functools.cached_property
    def xp_forward(self) -> Callable[..., Any]:
        """The forward with the ``tap`` keyword every framework run passes (one object per
        model, so that compiled runs are reused)."""
        if self.taps:
            return self.forward
        forward = self.forward

        def untapped(xp, params, x, tap=keep, **kw):
            return forward(xp, params, x, **kw)
        return untapped

    def hyper(self, lr: float | None = None, epochs: int | None = None) -> dict[str, Any]:
        if self.update is not None and lr is not None and lr != self.lr:
            raise ModelError(f"[{self.name}] declares its own update=, whose learning rate is its own: "
                             f"lr {lr!r} cannot reach it (change the model's lr and its update together)")
        out = {"lr": self.lr if lr is None else lr, "epochs": self.epochs if epochs is None else epochs,
               "batch": self.batch}
        if self.general:
            out["shuffle"] = self.shuffle
            out["optimizer"] = self.declared_optimizer.describe()
        return out

    @property
    def steps_per_epoch(self) -> int:
        if self.general:
            return math.ceil(self.samples / self.batch_size)
        return len(self.data[0]) if self.batch == "sample" else 1

    def _batch(self, sample: int | None) -> tuple[np.ndarray, np.ndarray]:
        x, y = self.data
        if sample is None or self.batch == "full":
            return x, y
        return x[sample:sample + 1], y[sample:sample + 1]

    def _inputs(self, sample: Any, hyper: Mapping[str, Any] | None = None
                ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
        """A step's batch of x and y, and the keywords its forward and backward get: for a
        model of the general loop, ``sample`` is an :class:`~crosscheck.declaring.loop.At` (None: step
        0 at the initial state; an int: that step at the initial state)."""
        if not self.general:
            return (*self._batch(sample), {})
        at = sample if isinstance(sample, At) else At(0 if sample is None else int(sample))
        declared = int((hyper or {}).get("epochs") or self.epochs or 1)
        epochs = max(declared, at.step // self.steps_per_epoch + 1)
        feed = self.feed(epochs)
        index = feed.index(at.step)
        x, y = self.data
        kw: dict[str, Any] = {}
        if self.noise is not None:
            kw["noise"] = feed.noise_at(at.step)
        if self.state is not None:
            kw["state"] = {k: np.array(v) for k, v in (at.state or self.state0).items()}
        return take(x, index, self.sample_axis), take(y, index, self.sample_axis), kw

    # ------------------------------------------------------------------ one step, checked
    def _forward_loss(self, params: Mapping[str, np.ndarray], xb, yb, where: str,
                      kw: Mapping[str, Any] | None = None) -> tuple[float, dict, dict]:
        """The loss (plus the penalty) at ``params``, the tapped intermediates, and the new
        carried state (the old one where the model declares none)."""
        xp, named = _numpy_xp(), {}
        kw = dict(kw or {})
        given = {k: np.array(v, np.float64) for k, v in params.items()}
        try:
            out = self.xp_forward(xp, given, xb, tap=recording(named), **kw)
            if self.state is not None:
                if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[1], Mapping)):
                    raise ModelError(f"[{self.name}] with state declared, forward must return "
                                     f"(prediction, new_state), got {type(out).__name__} {where}")
                out, new_state = out
                missing = [k for k in self.state0 if k not in new_state]
                if missing:
                    raise ModelError(f"[{self.name}] forward's new state has no {missing[0]!r} {where}")
                new_state = {k: np.array(new_state[k], np.float64) for k in self.state0}
            else:
                new_state = {}
            value = self.loss(xp, out, yb)
            if self.penalty is not None:
                value = value + self.penalty(xp, given)
        except ModelError:
            raise
        except Exception as e:
            at = where_in(e, _file_of(self.forward), _file_of(self.loss), _file_of(self.penalty))
            what = "forward, loss or penalty" if self.penalty is not None else "forward or loss"
            raise ModelError(f"{at}[{self.name}] {what} failed {where}: "
                             f"{type(e).__name__}: {e}") from e
        if isinstance(out, (tuple, list, dict)):
            raise ModelError(f"[{self.name}] forward returned a {type(out).__name__}, not one array "
                             f"(the prediction the loss takes) {where}")
        trap = _broadcast_trap(_shape(out), _shape(yb))
        if trap is not None:
            raise ModelError(f"[{self.name}] the forward's prediction has shape {_shape(out)} and y "
                             f"{_shape(yb)} {where}: an elementwise loss of the two broadcasts to {trap}, "
                             "every prediction against every target; give both one shape (e.g. "
                             "reshape the prediction, or y, to (m, 1))")
        if np.ndim(value) != 0:
            raise ModelError(f"[{self.name}] loss returned shape {_shape(value)}, not a scalar {where}; "
                             "reduce it to one number (e.g. a mean over samples)")
        missing = [r for r in self.relu if r not in named]
        if missing:
            raise ModelError(f"[{self.name}] relu names {missing[0]!r}, which the forward never taps "
                             f"(it taps {sorted(named) or 'nothing'})")
        return float(value), named, new_state

    def _backward(self, params: Mapping[str, np.ndarray], xb, yb, where: str,
                  named: Mapping[str, Any] | None = None, kw: Mapping[str, Any] | None = None
                  ) -> tuple[dict, dict]:
        given = {k: np.array(v, np.float64) for k, v in params.items()}
        kw = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in (kw or {}).items()}
        try:
            out = self.backward(given, xb, yb, **kw)
        except Exception as e:
            at = where_in(e, _file_of(self.backward))
            raise ModelError(f"{at}[{self.name}] backward failed {where}: {type(e).__name__}: {e}") from e
        grads, intermediates = _returned(out)
        if not isinstance(grads, Mapping) or not isinstance(intermediates, Mapping):
            raise ModelError(f"[{self.name}] backward must return a dict of gradients (or a pair "
                             f"(grads, intermediates) of dicts), got {type(out).__name__} {where}")
        for k in params:
            if not np.array_equal(given[k], params[k], equal_nan=True):
                raise ModelError(f"[{self.name}] backward changed params[{k!r}] in place {where}; "
                                 "it must only read the parameters (the update is the optimizer's)")
            if k not in grads:
                raise ModelError(f"[{self.name}] backward returned no gradient for {k!r} {where}")
        extra = [k for k in grads if k not in params]
        if extra:
            raise ModelError(f"[{self.name}] backward returned a gradient for {extra[0]!r}, which is not "
                             f"a parameter (parameters: {', '.join(params)}) {where}")
        checked = {}
        for k in params:
            g = grads[k]
            if _shape(g) != _shape(params[k]):
                raise ModelError(f"[{self.name}] the gradient of {k!r} has shape {_shape(g)}, its parameter "
                                 f"{_shape(params[k])} {where}; a gradient must have its parameter's shape "
                                 "(it is never broadcast)")
            checked[k] = _float_array(self.name, f"the gradient of {k!r} {where}", g) \
                if not np.issubdtype(np.asarray(g).dtype, np.floating) else np.array(g, np.float64)
        if named is not None:
            for t, g in intermediates.items():
                if t not in named:
                    raise ModelError(f"[{self.name}] backward returned dL/d{t}, but the forward taps no "
                                     f"{t!r} (it taps {sorted(named) or 'nothing'}) {where}")
                if _shape(g) != _shape(named[t]):
                    raise ModelError(f"[{self.name}] dL/d{t} has shape {_shape(g)}, the tapped {t!r} "
                                     f"{_shape(named[t])} {where}")
        return checked, {t: np.array(g, np.float64) for t, g in intermediates.items()}

    def validate(self) -> None:
        """Run one step at the initial values, checking what only a call can show; and that
        the backward is a function of its arguments (called again at the initial values after
        a call elsewhere, it must give the same): every check evaluates it out of order."""
        with np.errstate(all="ignore"):   # what goes wrong is said once, as a ModelError
            self._validate()

    def _validate(self) -> None:
        from crosscheck.frameworks import FRAMEWORKS

        if self.general and len(self.cannot_express) == len(FRAMEWORKS):
            fw, why = next(iter(self.cannot_express.items()))
            raise ModelError(f"[{self.name}] no framework's optimizer can run "
                             f"{self.declared_optimizer.describe()} ({fw}: {why})")
        for sample in ((None,) if self.batch == "full" else (0,)):
            xb, yb, kw = self._inputs(sample)
            where = "at the initial values"
            value, named, _ = self._forward_loss(self.params0, xb, yb, where, kw)
            if not math.isfinite(value):
                step = "step 0" if sample is None else "step 0 (sample 0)"
                raise ModelError(f"[{self.name}] the loss is {value!r} at the initial values ({step}): "
                                 "no gradient can be compared where the loss is not a finite number "
                                 "(a log(0), a division by 0?); start where it is")
            first = self._backward(self.params0, xb, yb, where, named, kw)[0]
            if self.update is not None:   # a function of its arguments, as the backward
                once = self._update(self.params0, first, {}, where)[0]
                again = self._update(self.params0, first, {}, where)[0]
                changed = _changed(once, again)
                if changed:
                    raise ModelError(f"[{self.name}] update gives another {changed!r} from the same "
                                     "parameters, gradients and a fresh state: it keeps state outside "
                                     "its state argument (globals, a closure, a step counter); keep it "
                                     "in state, which starts as {} and is passed back each step")
            try:   # values the user never declared: a backward may refuse them (its own domain)
                self._backward({k: v + 0.5 for k, v in self.params0.items()}, xb, yb, "at moved values",
                               kw=kw)
            except ModelError:
                continue
            again = self._backward(self.params0, xb, yb, where, kw=kw)[0]
            changed = _changed(first, again)
            if changed:
                raise ModelError(f"[{self.name}] backward gives another gradient of {changed!r} at the "
                                 "same values after a call elsewhere: it keeps state between calls (a "
                                 "cache, or parameters from the last call); it must depend on its "
                                 "arguments only")

    def _update(self, params: Mapping[str, np.ndarray], grads: Mapping[str, np.ndarray], state: dict,
                where: str) -> tuple[dict, dict]:
        """The hand-written ``update`` on copies of ``params`` and ``grads`` (it may write them
        in place, as real optimizers do), its output checked."""
        given = {k: np.array(v, np.float64) for k, v in params.items()}
        try:
            out = self.update(given, {k: np.array(v, np.float64) for k, v in grads.items()}, state)
        except Exception as e:
            at = where_in(e, _file_of(self.update))
            raise ModelError(f"{at}[{self.name}] update failed {where}: {type(e).__name__}: {e}") from e
        if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[0], Mapping)
                and isinstance(out[1], dict)):
            raise ModelError(f"[{self.name}] update must return (params, state), a dict of parameters "
                             f"and the state dict, got {type(out).__name__} {where}")
        new, state = out
        for k in params:
            if k not in new:
                raise ModelError(f"[{self.name}] update returned no value for {k!r} {where}")
            if _shape(new[k]) != _shape(params[k]):
                raise ModelError(f"[{self.name}] update returned {k!r} of shape {_shape(new[k])}, the "
                                 f"parameter {_shape(params[k])} {where}")
        return {k: np.array(new[k], np.float64) for k in params}, state

    # ------------------------------------------------------------------ the case protocol
    def gradient(self, params: Mapping[str, np.ndarray], hyper: Mapping[str, Any] | None = None,
                 sample: Any = None) -> tuple[float, dict]:
        xb, yb, kw = self._inputs(sample, hyper)
        where = "at the parameters given"
        value, _, _ = self._forward_loss(params, xb, yb, where, kw)
        return value, self._backward(params, xb, yb, where, kw=kw)[0]

    def gradient_precise(self, params: Mapping[str, np.ndarray], hyper: Mapping[str, Any] | None = None,
                         sample: Any = None) -> tuple[Any, dict] | None:
        """The loss and the hand-written gradients at ``params`` computed in NumPy's longdouble
        (extended precision): the same code, less rounding. None where the platform's
        longdouble is no wider than float64, or the code does not run in it."""
        if np.finfo(np.longdouble).eps >= np.finfo(np.float64).eps:
            return None
        return self._gradient_in(np.longdouble, params, hyper, sample, with_loss=True)

    def gradient_rounding(self, params: Mapping[str, np.ndarray], grads: Mapping[str, np.ndarray],
                          hyper: Mapping[str, Any] | None = None, sample: Any = None
                          ) -> dict[str, np.ndarray] | None:
        """The float64 gradients' own rounding error at ``params``, element by element: their
        difference from the same code in extended precision where a step is small enough for
        that to cost little (:data:`tolerances.PRECISE_SHADOW_WORK`: longdouble has no BLAS;
        a 784-128 layer's step took 50 ms in it), else estimated from the same code in
        float32, its difference scaled by the ratio of the unit roundoffs (rounding errors are
        first order in u; a unit that float32 saturates to exactly 1 is underestimated). None
        where neither runs: nothing is measured."""
        from crosscheck import tolerances

        work = sum(int(np.size(v)) for v in params.values()) * self.batch_size
        wider = np.finfo(np.longdouble).eps < np.finfo(np.float64).eps
        precise = work <= tolerances.PRECISE_SHADOW_WORK and wider
        dtype = np.longdouble if precise else np.float32
        got = self._gradient_in(dtype, params, hyper, sample, with_loss=False)
        if got is None:
            return None
        ratio = 1.0 if precise else float(np.finfo(np.float64).eps / np.finfo(np.float32).eps)
        with np.errstate(all="ignore"):
            return {k: np.nan_to_num(np.asarray(np.asarray(grads[k], got[1][k].dtype) - got[1][k], np.float64)
                                     * ratio, nan=0.0, posinf=0.0, neginf=0.0) for k in params}

    def _gradient_in(self, dtype: Any, params: Mapping[str, np.ndarray], hyper: Mapping[str, Any] | None,
                     sample: Any, with_loss: bool) -> tuple[Any, dict] | None:
        """The hand-written loss (``with_loss``) and gradients at ``params`` with every floating
        array in ``dtype``; None where the code does not run so."""
        xb, yb, kw = self._inputs(sample, hyper)
        xb = np.asarray(xb, dtype)
        yb = yb if yb.dtype.kind in "iu" else np.asarray(yb, dtype)
        kw = {k: ({n: np.asarray(a, dtype) if np.asarray(a).dtype.kind == "f" else a for n, a in v.items()})
              for k, v in kw.items()}
        given = {k: np.array(v, dtype) for k, v in params.items()}
        try:
            with np.errstate(all="ignore"):
                value = None
                if with_loss:
                    out = self.xp_forward(_numpy_xp(), dict(given), xb, **kw)
                    value = self.loss(_numpy_xp(), out[0] if self.state is not None else out, yb)
                    if self.penalty is not None:
                        value = value + self.penalty(_numpy_xp(), dict(given))
                out = self.backward(given, xb, yb, **kw)
            grads = _returned(out)[0]
            return value, {k: np.asarray(grads[k], dtype) for k in params}
        except Exception:
            return None

    def loss_at(self, params: Mapping[str, np.ndarray], hyper: Mapping[str, Any] | None = None,
                sample: Any = None) -> tuple[float, tuple]:
        xb, yb, kw = self._inputs(sample, hyper)
        value, named, _ = self._forward_loss(params, xb, yb, "at the parameters given", kw)
        return value, tuple(tuple(np.ravel(np.asarray(named[r]) > 0)) for r in self.relu)

    def intermediates(self, params: Mapping[str, np.ndarray], hyper: Mapping[str, Any] | None = None,
                      sample: Any = None) -> dict[str, np.ndarray]:
        xb, yb, kw = self._inputs(sample, hyper)
        _, named, _ = self._forward_loss(params, xb, yb, "at the parameters given", kw)
        return self._backward(params, xb, yb, "at the parameters given", named, kw)[1]

    def problem(self, lr: float | None = None, epochs: int | None = None) -> Problem:
        x, y = self.data
        hyper = self.hyper(lr, epochs)
        loop = self.loop(int(hyper["epochs"] or 1)) if self.general else None
        return make(self.name, "batch" if self.batch == "full" else "sgd", x, y, self.params0,
                    hyper, self.xp_forward, self.loss, masks=tuple(self.relu),
                    sample_slice=True, loop=loop)

    @functools.cached_property
    def cannot_express(self) -> dict[str, str]:
        """framework -> why its own optimizer cannot run the declared one."""
        from crosscheck.frameworks import FRAMEWORKS

        opt = self.declared_optimizer
        return {fw: why for fw in FRAMEWORKS if (why := opt.cannot(fw))}

    def stepper(self, hyper: Mapping[str, Any] | None = None) -> Callable[[int, Mapping], tuple]:
        """One step of the reference's training loop at a time: ``step(k, params) -> (loss,
        grads, new params)``, with the carried state and the optimizer's state kept inside
        (each stepper starts afresh): the reference run, and the envelope's shadow."""
        hyper = dict(self.hyper() if hyper is None else hyper)
        lr, epochs = float(hyper["lr"]), int(hyper["epochs"])
        # The update: the hand-written one (checked), the declared optimizer as a framework
        # runs it, or the plain p - lr * g (None).
        update: Callable[..., tuple[dict, dict]] | None = None
        if self.update is not None:
            update = self._update
        elif not self.declared_optimizer.plain:
            from crosscheck.frameworks import FRAMEWORKS

            able = tuple(f for f in FRAMEWORKS if f not in self.cannot_express)
            by_framework = optim.reference_update(self.declared_optimizer, lr, able)[0]

            def update(params, grads, state, where):
                return by_framework(params, grads, state)
        carry: dict[str, Any] = {"state": self.state0, "opt": {}, "named": {}}

        def step(k: int, params: Mapping[str, np.ndarray],
                 rounding: np.random.Generator | None = None) -> tuple[float, dict, dict]:
            """One step; given ``rounding`` (the envelope's shadow), the update sees each
            gradient moved by its own rounding error (see :func:`_rounded`)."""
            where = f"at step {k}"
            xb, yb, kw = self._inputs(At(k, carry["state"]), {"epochs": epochs})
            value, named, new_state = self._forward_loss(params, xb, yb, where, kw)
            grads, _ = self._backward(params, xb, yb, where, kw=kw)
            used = grads
            if rounding is not None:
                dev = self.gradient_rounding(params, grads, {"epochs": epochs}, At(k, carry["state"]))
                used = _rounded(grads, dev, rounding)
            if update is None:
                new = {n: params[n] - lr * used[n] for n in params}
            else:
                new, carry["opt"] = update(params, used, carry["opt"], where)
            carry["state"], carry["named"] = new_state, named
            return value, grads, new
        step.carry = carry  # type: ignore[attr-defined]
        return step

    def run(self, lr: float | None = None, epochs: int | None = None) -> Trajectory:
        """The reference run: NumPy forward and loss, the hand-written backward, and the
        update (``p - lr * g``, the hand-written ``update``, or the declared optimizer)."""
        hyper = self.hyper(lr, epochs)
        lr, epochs = float(hyper["lr"]), int(hyper["epochs"])
        if self.general:
            return self._run_general(hyper)
        per_epoch = self.steps_per_epoch
        p = {k: v.copy() for k, v in self.params0.items()}
        rec = Recorder(p, steps=epochs * per_epoch, epochs=epochs)
        xp = _numpy_xp()
        for epoch in range(epochs):
            total = 0.0
            for sample in range(per_epoch):
                where = f"at step {rec.k}"
                xb, yb = self._batch(None if self.batch == "full" else sample)
                value, named, _ = self._forward_loss(p, xb, yb, where)
                grads, _ = self._backward(p, xb, yb, where)
                total += value
                p = {k: p[k] - lr * grads[k] for k in p}
                rec.step(value, grads, p, {r: np.asarray(named[r]) > 0 for r in self.relu})
            rec.epoch_loss[epoch] = total
        return rec.finish(case=self.name, framework="numpy", hyper=hyper,
                          pred_train=np.asarray(self.xp_forward(xp, p, self.data[0])))

    def _run_general(self, hyper: Mapping[str, Any]) -> Trajectory:
        epochs = int(hyper["epochs"])
        feed = self.feed(epochs)
        per_epoch = feed.per_epoch
        step = self.stepper(hyper)
        p = {k: v.copy() for k, v in self.params0.items()}
        rec = Recorder(p, steps=feed.steps, epochs=epochs)
        rec.carried(0, self.state0)
        for epoch in range(epochs):
            total = 0.0
            for _ in range(per_epoch):
                k = rec.k
                value, grads, p = step(k, p)
                total += value
                named = step.carry["named"]  # type: ignore[attr-defined]
                rec.step(value, grads, p, {r: np.asarray(named[r]) > 0 for r in self.relu})
                rec.carried(k + 1, step.carry["state"])  # type: ignore[attr-defined]
            rec.epoch_loss[epoch] = total
        return rec.finish(case=self.name, framework="numpy", hyper=hyper, pred_train=np.zeros(0), feed=feed)

    @functools.cached_property
    def case(self) -> Case:
        """This model as a case: what the runner, the comparison and the report take."""
        shapes = ", ".join(f"{k} {v.shape}" for k, v in self.params0.items())
        batch = f"batches of {self.batch}" if not isinstance(self.batch, str) else f"{self.batch}-batch"
        extra = "".join(f", {w}" for w, on in (
            ("shuffled", self.shuffle is not None), ("penalty", self.penalty is not None),
            (self.declared_optimizer.describe(), not self.declared_optimizer.plain),
            ("hand-written update", self.update is not None), ("noise", self.noise is not None),
            ("state", self.state is not None), ("samples in columns", self.sample_axis == 1)) if on)
        return Case(
            name=self.name,
            summary=self.summary or (f"{batch}{extra}, lr {self.lr}, {self.epochs} epochs, "
                                     f"{self.samples} samples; {shapes}"),
            params=tuple(self.params0), problem=self.problem, run_reference=self.run,
            gradient=self.gradient, loss_at=self.loss_at, intermediates=self.intermediates,
            gradient_precise=self.gradient_precise,
            units={r: ("ReLU", 0) for r in self.relu}, curvature=self.batch == "full" and not self.general,
            notes=self.upcast, stepper=self.stepper if self.general else None,
            update=self._update if self.update is not None else None, optimizer=self.declared_optimizer,
            cannot_express=self.cannot_express if self.general else {},
            penalty_gradient=self.penalty_gradient if self.penalty is not None else None)

    def penalty_gradient(self, params: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """The declared penalty's gradient alone at ``params``, by central differences (a
        penalty is a few operations of the parameters: its differences are exact to about
        1e-10 relative, enough to tell a factor 2 from 1)."""
        given = {k: np.array(v, np.float64) for k, v in params.items()}
        out = {}
        for k, v in given.items():
            g = np.zeros_like(v)
            for i in np.ndindex(v.shape):
                h = tolerances.FD_STEP * max(1.0, abs(float(v[i])))
                up, down = dict(given), dict(given)
                up[k], down[k] = v.copy(), v.copy()
                up[k][i] += h
                down[k][i] -= h
                xp = _numpy_xp()
                g[i] = (float(self.penalty(xp, up)) - float(self.penalty(xp, down))) / (2 * h)
            out[k] = g
        return out

    @functools.cached_property
    def upcast(self) -> tuple[str, ...]:
        """What was declared in another dtype than float64 and is checked in float64 (the
        reference, the backward and the frameworks all see float64 arrays): one note each."""
        declared = {"x": self.x, "y": self.y, **{f"init[{k!r}]": v for k, v in self.init.items()}}
        notes = []
        for what, value in declared.items():
            dtype = np.asarray(value).dtype
            if what == "y" and dtype.kind in "iu":
                notes.append(f"y is {dtype.name}: kept as integers (class labels), as the loss sees them")
                continue
            if dtype != np.float64:
                notes.append(f"{what} is {dtype.name}: checked as float64, its values exactly")
        return tuple(notes)


def _rounded(grads: Mapping[str, np.ndarray], rounding: Mapping[str, np.ndarray] | None,
             rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Each gradient moved by what another correct implementation's may differ from it by:
    the local question's plain bound, OPS_PER_STEP * u of its largest magnitude, and more
    where the code's own rounding error of an element is estimated larger (``rounding``,
    :meth:`Model.gradient_rounding`); pushed the way the code deviates (see
    ``tolerances.envelope``).

    An optimizer that divides by a root of the gradients' moments (Adagrad, Adam, RMSprop)
    turns an absolute error of a small element into a large change of its step (lr / sqrt(eps)
    for an element near 0), and its normalised step barely feels a nudge of the parameters:
    the envelope's shadow must carry the gradients' own differences. Found with a character
    RNN by backprop through time at lr 10 (torch and JAX parted from the reference by 3.6e-10
    at step 1, their gradients agreeing with it to 4e-14), with AdamW at lr 10 (JAX's bias
    drifted 4e-13 a step from the reference, its gradients 43 u from the manual ones), and
    with a saturated tanh at lr 1 (an h one ulp off makes 1 - h**2 off by 1e-5 relative)."""
    from crosscheck.tolerances import OPS_PER_STEP, UNIT_ROUNDOFF

    out = {}
    for n, g in grads.items():
        g = np.asarray(g, np.float64)
        floor = OPS_PER_STEP * UNIT_ROUNDOFF["float64"] * float(np.max(np.abs(g), initial=0.0))
        dev = np.asarray(rounding[n], np.float64) if rounding is not None else np.zeros_like(g)
        signs = np.where(dev != 0, np.sign(dev), np.where(rng.integers(0, 2, size=g.shape) == 0, -1.0, 1.0))
        out[n] = g + np.maximum(np.abs(dev), floor) * signs
    return out


# ---------------------------------------------------------------------------- models in files
_SPEC = re.compile(r"^(?P<path>.+\.py)(?::(?P<name>[^/\\:]+))?$")


def is_model_file(arg: str) -> bool:
    """``path/to/file.py`` or ``path/to/file.py:name``: a file of models, not a case name."""
    return bool(_SPEC.match(arg))


def load(arg: str) -> list[Model]:
    """The models a file defines at its top level, in order (``file.py:name``: that one, by
    variable or model name). Imports the file as a module of its own."""
    m = _SPEC.match(arg)
    if not m:
        raise ModelError(f"{arg}: not a path to a .py file (or file.py:name)")
    path, name = Path(m["path"]), m["name"]
    if not path.is_file():
        raise ModelError(f"{path}: no such file")
    module_name = "crosscheck_user_" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
    module = sys.modules.get(module_name)
    if module is None:
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module          # dataclasses and pickling look modules up
        sys.path.insert(0, str(path.resolve().parent))   # so that it imports its neighbours
        try:
            with interrupts.hold():   # a user's file may import torch (see crosscheck.running.interrupts)
                spec.loader.exec_module(module)
        except ModelError as e:
            del sys.modules[module_name]
            raise ModelError(f"{path}: {e}") from None
        except BaseException as e:
            del sys.modules[module_name]
            if not isinstance(e, (Exception, SystemExit)):   # a script's sys.exit is its failure,
                raise                                         # never the run's exit code
            here = str(path.resolve())
            line = next((f" (line {t.lineno})" for t in reversed(_frames(e))
                         if str(Path(t.filename).resolve()) == here), "")
            what = (f"it called sys.exit({e.code!r}) (a script without an if __name__ == '__main__' "
                    "guard?)" if isinstance(e, SystemExit) else f"{type(e).__name__}: {e}")
            raise ModelError(f"{path}: importing it failed{line}: {what}") from None
        finally:
            sys.path.remove(str(path.resolve().parent))
    imported = _imported_from_neighbours(module, path)
    found = {id(v): (k, v) for k, v in vars(module).items() if isinstance(v, Model) and id(v) not in imported}
    named: dict[str, str] = {}
    for k, v in found.values():
        if named.setdefault(v.name, k) != k:
            raise ModelError(f"{path}: two models are named {v.name!r} (variables {named[v.name]} and {k}); "
                             "rename one")
    if name is not None:
        picked = [v for k, v in found.values() if name in (k, v.name)]
        if not picked:
            known = ", ".join(k for k, _ in found.values()) or "none"
            raise ModelError(f"{path}: defines no Model named {name!r} (its models: {known})")
        return picked[:1]
    if not found:
        raise NoModel(f"{path}: defines no crosscheck.Model at its top level")
    return [v for _, v in found.values()]


#: Folders a search for model files never enters (besides hidden ones and ``_``-prefixed).
_NOT_SEARCHED = {"venv", "site-packages", "node_modules", "build", "dist"}


def discover(folder: str) -> tuple[list[str], list[str]]:
    """The files of models below ``folder``, as pytest finds tests: every ``*.py`` file,
    recursively and sorted, that mentions ``crosscheck`` and ``Model`` (read as text first:
    nothing else is imported) and defines a :class:`Model` at its top level; and the other
    ``*.py`` files searched, not imported (a run says which, so that a model made by a
    helper of another file is not left out unseen). Hidden folders, ``_``-prefixed ones and
    files, and virtual environments are not searched."""
    found, passed = [], []
    for path in sorted(Path(folder).rglob("*.py")):
        parts = path.relative_to(folder).parts
        if any(p.startswith((".", "_")) or p in _NOT_SEARCHED for p in parts[:-1]) \
                or parts[-1].startswith((".", "_")):
            continue
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if "crosscheck" not in text or "Model" not in text:
            passed.append(str(path))
            continue
        try:
            load(str(path))
        except NoModel:
            passed.append(str(path))
            continue
        found.append(str(path))
    if not found:
        raise ModelError(f"{folder}: no file in it defines a crosscheck.Model")
    return found, passed


def _imported_from_neighbours(module: Any, path: Path) -> set[int]:
    """The models ``module`` holds because it imported them from a module beside it (``from
    a_model import model``): they are that file's, checked there, not this one's."""
    if not any(isinstance(v, Model) for v in vars(module).values()):
        return set()
    folder = os.path.dirname(os.path.abspath(path))   # (string checks: a run loads files often)
    ours = set()
    for other in list(sys.modules.values()):
        where = getattr(other, "__file__", None)
        if other is module or not isinstance(where, str) or not os.path.abspath(where).startswith(folder):
            continue
        ours |= {id(v) for v in vars(other).values() if isinstance(v, Model)}
    return ours


def _frames(e: BaseException) -> list:
    import traceback

    return list(traceback.extract_tb(e.__traceback__))


def needs_run(name: str, hyper: Mapping[str, Any]) -> None:
    """Raise :class:`ModelError` unless ``hyper`` (a model's, with any overrides) has the
    ``lr`` and ``epochs`` a training run needs (a model may leave them out for
    :func:`crosscheck.check_gradient`)."""
    missing = [k for k in ("lr", "epochs") if hyper.get(k) is None]
    if missing:
        raise ModelError(f"[{name}] {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} "
                         "needed to check a training run (declare them, or pass --lr and --epochs); "
                         "crosscheck.check_gradient(model) checks the gradient at points without one")


def register(model: Model, origin: str | None = None) -> Case:
    """Check ``model`` at its initial values and make it known by name in this process."""
    model.validate()
    try:
        return cases.register(dataclasses.replace(model.case, origin=origin))
    except ValueError as e:
        raise ModelError(str(e)) from None


def file_of(arg: str) -> str:
    """The file part of ``file.py[:name]``."""
    m = _SPEC.match(arg)
    return m["path"] if m else arg


def register_file(arg: str, data: Mapping[str, tuple] | None = None) -> list[str]:
    """Load and register every model of ``arg``; their names, in order.

    ``data``: model name -> (x, y, init) to use instead of what the file computes: another
    process loading the same file must check the very same numbers, even where the file
    draws them from an unseeded generator.
    """
    names = []
    for m in load(arg):
        if data and m.name in data:
            x, y, init = data[m.name]
            m = dataclasses.replace(m, x=x, y=y, init=init)
        try:
            names.append(register(m, file_of(arg)).name)
        except ModelError as e:   # every message about a file's model starts with the file
            text = str(e)
            located = text.startswith(file_of(arg)) or re.match(r"^\S+\.py:\d+: ", text)
            raise ModelError(text if located else f"{file_of(arg)}: {text}") from None
    return names


def data_of(names: list[str]) -> dict[str, tuple]:
    """Registered models' (x, y, init) as they are checked in this process."""
    out = {}
    for name in names:
        p = cases.get(name).problem()
        out[name] = (p.x, p.y, dict(p.init))
    return out
