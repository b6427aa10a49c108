"""The six cases in PyTorch: forward passes only; gradients from ``torch.autograd.grad``.

Where the document and torch's habits differ, the document wins:

* Biases are 0-d tensors, one scalar shared by every unit, as the document's
  ``np.random.random()``; ``nn.Linear`` would give a per-unit bias.
* No ``nn.MSELoss``/optimizer: the loss is written as the document writes it (a mean
  over the batch, or the per-sample squared error for SGD) and the update is the
  document's ``p -= lr * grad`` on every parameter after all gradients are taken.
* SGD keeps the document's per-sample Python loop (no DataLoader, no shuffling).
* ReLU is ``torch.relu``, whose derivative at exactly 0 is 0, as the document's
  ``(x > 0)``; ``clamp(min=0)`` would give 1 there (see ``crosscheck kinks``).
* Data and initial values come from the reference's seeded NumPy draw, copied in.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from crosscheck.problem import Problem
from crosscheck.record import Recorder, Trajectory

#: Epochs between two calls of ``train``'s ``progress``: often enough for a display that
#: refreshes every 0.1 s, rare enough to cost nothing (one call per 100+ updates).
PROGRESS_EVERY = 100

ACTIVATIONS = {
    "relu": torch.relu,
    "identity": lambda t: t,
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "leakyrelu": lambda t: F.leaky_relu(t, 0.01),
}


def keep(name, t):
    """The default tap: a forward pass calls ``tap(name, t)`` on each intermediate the
    document names, so training can read the ReLU masks and the chain-rule view can ask
    autograd for the gradient with respect to it."""
    return t


# Forward passes: (params, x, tap) -> prediction; intermediates carry the document's names.
def linear_nobias(p, x, tap=keep):
    H = tap("H", x @ p["W1"])                                # (m, 1)
    return tap("O", H @ p["W2"])                             # (m, 1)


def linear_bias(p, x, tap=keep):
    H = tap("H", x @ p["W1"] + p["b1"])                      # (m, 1)
    return tap("O", H @ p["W2"] + p["b2"])                   # (m, 1)


def two_layer(p, x, tap=keep, activations=("relu", "relu")):
    act1, act2 = (ACTIVATIONS[a] if isinstance(a, str) else a for a in activations)
    a = tap("a", x @ p["W1"] + p["b1"])                      # (m, h)
    A = tap("A", act1(a))                                    # (m, h)
    z = tap("z", A @ p["W2"] + p["b2"])                      # (m, o)
    return tap("O", act2(z))                                 # (m, o)


def sgd_linear(p, x, tap=keep):
    return tap("y_pred", p["w"] * x + p["b"])


def sgd_two_relu(p, x, tap=keep):
    z1 = tap("z1", p["w1"] * x + p["b1"])
    h1 = tap("h1", torch.relu(z1))
    z2 = tap("z2", p["w2"] * x + p["b2"])
    h2 = tap("h2", torch.relu(z2))
    return tap("z3", p["w3"] * h1 + p["w4"] * h2 + p["b3"])


def recording(named):
    """A tap that keeps every intermediate in ``named``."""
    def tap(name, t):
        named[name] = t
        return t
    return tap


def forward_of(problem: Problem):
    if problem.case in ("relu", "relu_class"):
        return _two_layer_with(tuple(problem.activations))
    return globals()[problem.case]


@functools.cache
def _two_layer_with(activations):
    # One function object per activation pair, so a compiled run is reused.
    return functools.partial(two_layer, activations=activations)


def gradients(problem: Problem, params: dict, sample: int | None = None,
              dtype: str = "float64") -> dict:
    """One step's autograd gradients at ``params``: of the loss with respect to every
    parameter and to every intermediate the forward taps (``retain_grad``).

    ``sample`` picks the SGD sample; a batch case uses the whole batch.
    """
    tdtype = getattr(torch, dtype)
    p = {k: torch.tensor(np.asarray(v), dtype=tdtype, requires_grad=True) for k, v in params.items()}
    x, y = (torch.tensor(a, dtype=tdtype) for a in (problem.x, problem.y))
    named: dict = {}

    def tap(name, t):
        t.retain_grad()
        named[name] = t
        return t

    if problem.mode == "batch":
        loss = torch.mean(torch.square(y - forward_of(problem)(p, x, tap)))
    else:
        loss = (forward_of(problem)(p, x[sample], tap) - y[sample]) ** 2
    loss.backward()
    return {"loss": loss.item(), "params": {k: v.grad.numpy() for k, v in p.items()},
            "intermediates": {n: t.grad.numpy() for n, t in named.items() if t.grad is not None}}


def train(problem: Problem, dtype: str = "float64",
          progress: Callable[[int], None] | None = None) -> Trajectory:
    """The document's training loop with torch autograd gradients, every step recorded.

    ``progress(steps_done)``, if given, is called every ``PROGRESS_EVERY`` epochs and at the end.
    """
    tdtype = getattr(torch, dtype)
    forward = forward_of(problem)
    params = {k: torch.tensor(v, dtype=tdtype, requires_grad=True) for k, v in problem.init.items()}
    x, y = (torch.tensor(a, dtype=tdtype) for a in (problem.x, problem.y))
    lr = problem.lr
    rec = Recorder(problem.init, steps=problem.steps, epochs=problem.epochs, dtype=dtype)

    def update(loss, pre):
        grads = torch.autograd.grad(loss, tuple(params.values()))
        with torch.no_grad():
            for p, g in zip(params.values(), grads, strict=True):
                p -= lr * g
        rec.step(loss.item(), {k: g.numpy() for k, g in zip(params, grads, strict=True)},
                 {k: p.detach().numpy() for k, p in params.items()},
                 {n: (pre[n] > 0).numpy() for n in problem.masks})

    pre: dict = {}
    tap = recording(pre)
    for epoch in range(problem.epochs):
        if problem.mode == "batch":
            out = forward(params, x, tap)
            loss = torch.mean(torch.square(y - out))
            rec.epoch_loss[epoch] = loss.item()
            update(loss, pre)
        else:
            total_loss = 0.0
            for xi, yi in zip(x, y, strict=True):
                out = forward(params, xi, tap)
                loss = (out - yi) ** 2
                total_loss += loss.item()
                update(loss, pre)
            rec.epoch_loss[epoch] = total_loss
        if progress is not None and ((epoch + 1) % PROGRESS_EVERY == 0 or epoch + 1 == problem.epochs):
            progress((epoch + 1) * problem.steps // problem.epochs)

    with torch.no_grad():
        pred_train = forward(params, x).numpy()
        x_test = torch.tensor(problem.x_test, dtype=tdtype)
        pred_test = forward(params, x_test).numpy() if len(x_test) else np.zeros(0)
    return rec.finish(case=problem.case, framework="torch", hyper=problem.hyper,
                      pred_train=pred_train, pred_test=pred_test)
