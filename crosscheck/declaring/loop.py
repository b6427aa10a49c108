"""What a real training loop feeds each step, declared once and shared by every implementation.

A model that declares mini-batches, shuffling, noise (dropout masks), carried state (batch-norm
running statistics, an RNN's hidden state), a penalty or an optimizer runs the general loop:
at every step, the batch of the epoch's order, that step's noise, the forward (which may
return a new state), the loss plus the penalty, the gradients (hand-written in the reference,
autograd in the frameworks) and the update. The :class:`Feed` is computed once, before any
implementation runs, so the reference, torch and JAX see the very same index arrays and noise
arrays; the trajectory keeps it (``Trajectory.feed``), so that a step's inputs are looked up,
never inferred from step counts.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np


def take(a: Any, index: np.ndarray, axis: int, element: bool = False) -> Any:
    """The samples ``index`` of ``a`` (NumPy, torch or JAX), samples along ``axis`` (a 1-D
    array's only axis): a slice where they are consecutive, as a plain loop takes them;
    ``element``: the one sample ``a[i]`` itself."""
    axis = axis if np.ndim(a) > 1 else 0
    if element:
        return a[int(index[0])] if axis == 0 else a[:, int(index[0])]
    index = np.asarray(index)
    if index.size and np.array_equal(index, np.arange(index[0], index[0] + index.size)):
        cut = slice(int(index[0]), int(index[0]) + index.size)
    else:
        cut = index
    return a[cut] if axis == 0 else a[:, cut]


@dataclasses.dataclass(frozen=True, eq=False)
class Feed:
    """Every step's sample indices and noise arrays.

    Attributes:
        order: (epochs, m) the samples each epoch visits, in order (``arange`` unshuffled).
        batch: samples per step (the last of an epoch may have fewer).
        axis: the samples' axis of x and y (0, or 1 for samples in columns).
        noise: one ``{name: array}`` per step, as the model's ``noise(rng, x)`` drew them.
        shuffled: each epoch has its own order (else every epoch visits ``order[0]``).
        element: a step of one sample sees the element ``x[i]``, not ``x[i:i + 1]`` (the
            documents' plain Python loops over scalars).
    """

    order: np.ndarray
    batch: int
    axis: int = 0
    noise: tuple[Mapping[str, np.ndarray], ...] = ()
    shuffled: bool = False
    element: bool = False

    @property
    def samples(self) -> int:
        return int(self.order.shape[1])

    @property
    def per_epoch(self) -> int:
        return math.ceil(self.samples / self.batch)

    @property
    def steps(self) -> int:
        return int(self.order.shape[0]) * self.per_epoch

    def index(self, step: int) -> np.ndarray:
        """The samples step ``step`` sees, in order."""
        epoch, j = divmod(step, self.per_epoch)
        return self.order[epoch, j * self.batch:(j + 1) * self.batch]

    def noise_at(self, step: int) -> dict[str, np.ndarray]:
        return dict(self.noise[step]) if self.noise else {}

    def as_arrays(self) -> dict[str, np.ndarray]:
        """For a record's arrays: the order, and each noise array stacked over the steps where
        every step's has one shape."""
        out = {"feed.order": self.order}
        if self.noise:
            for name in self.noise[0]:
                shapes = {np.shape(n[name]) for n in self.noise}
                if len(shapes) == 1:
                    out[f"feed.noise.{name}"] = np.stack([np.asarray(n[name]) for n in self.noise])
        return out


def make_feed(m: int, epochs: int, batch: int, shuffle: int | None, axis: int, x: np.ndarray,
              noise: Callable[..., Mapping[str, Any]] | None, seed: int,
              check: Callable[[int, Any], dict[str, np.ndarray]] | None = None) -> Feed:
    """The feed of a run of ``epochs`` epochs: each epoch's order (``shuffle``: a seed; one
    ``numpy.random.default_rng(shuffle)`` makes every epoch's ``permutation(m)``), and
    each step's noise, ``noise(rng, x_batch)`` with one ``default_rng(seed)`` drawn from in
    step order. ``check(step, drawn)`` validates and converts what ``noise`` returned."""
    if shuffle is None:
        order = np.broadcast_to(np.arange(m), (epochs, m))
    else:
        rng = np.random.default_rng(shuffle)
        order = np.stack([rng.permutation(m) for _ in range(epochs)]) if epochs else np.zeros((0, m), int)
    feed = Feed(order=order, batch=min(batch, m), axis=axis, shuffled=shuffle is not None)
    if noise is None:
        return feed
    rng = np.random.default_rng(seed)
    drawn = []
    for step in range(feed.steps):
        out = noise(rng, take(x, feed.index(step), axis))
        drawn.append(check(step, out) if check is not None else dict(out))
    return dataclasses.replace(feed, noise=tuple(drawn))


@dataclasses.dataclass(frozen=True)
class At:
    """What step ``step`` of one run sees besides its parameters: its place in the feed, and
    that run's own carried state at the step's start (``{}`` for a model without state)."""

    step: int
    state: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True, eq=False)
class Loop:
    """A general loop's declaration, as the frameworks run it (carried by the model's
    :class:`~crosscheck.declaring.problem.Problem`): the feed, the initial state, the penalty and the
    optimizer, and which keywords the forward takes."""

    feed: Feed
    state0: Mapping[str, np.ndarray]
    penalty: Callable[..., Any] | None
    optimizer: Any            # crosscheck.optim.Optimizer
    noisy: bool
    stateful: bool

    def kwargs(self, step: int, state: Mapping[str, Any], convert: Callable[[np.ndarray], Any]) -> dict:
        """The keywords a forward (or backward) gets at ``step``: ``noise=`` and ``state=``,
        each only where the model declares it; arrays through ``convert``."""
        kw: dict[str, Any] = {}
        if self.noisy:
            kw["noise"] = {k: convert(v) for k, v in self.feed.noise[step].items()}
        if self.stateful:
            kw["state"] = dict(state)
        return kw

    def batch(self, a: Any, step: int, convert: Callable[[np.ndarray], Any] = np.asarray) -> Any:
        """Step ``step``'s samples of ``a`` (x or y, NumPy), through ``convert``."""
        feed = self.feed
        return convert(np.asarray(take(np.asarray(a), feed.index(step), feed.axis, feed.element)))


def loop_of(problem: Any) -> Loop:
    """``problem``'s loop: the one its model declares, or the documents' loops as the same
    general loop (full batch, or one sample per step in order; plain SGD; nothing else)."""
    if problem.loop is not None:
        return problem.loop
    from crosscheck.optim import SGD

    m, sgd = len(problem.x), problem.mode == "sgd"
    epochs = problem.epochs if problem.hyper.get("epochs") is not None else 1   # (points: no run)
    feed = Feed(order=np.broadcast_to(np.arange(m), (epochs, m)), batch=1 if sgd else m,
                element=sgd and not problem.sample_slice)
    return Loop(feed=feed, state0={}, penalty=None, optimizer=SGD(), noisy=False, stateful=False)


def at_of(sample: Any) -> At:
    """A step's :class:`At` from what a caller gave: an ``At``, a step number or None (step 0),
    at the initial state."""
    return sample if isinstance(sample, At) else At(0 if sample is None else int(sample))
