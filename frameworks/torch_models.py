"""Any case or model in PyTorch: its forward pass and loss, written once against the array
namespace ``xp`` (array-api-compat's torch), with gradients from ``torch.autograd.grad``.

Where the hand-written code and torch's habits differ, the hand-written code wins:

* The update is ``p -= lr * grad`` on every parameter after all gradients are taken, or
  where a model declares an optimizer, ``torch.optim``'s as declared (crosscheck.optim).
* The steps keep the order of a plain Python loop (no DataLoader): each step's batch and
  noise come from the model's feed (its own shuffling, drawn once, the same in every
  implementation); an epoch of several steps has the sum of their losses, added in order.
* Data and initial values are copied in from the case's NumPy arrays.

Nothing here knows a case: ``problem.forward`` and ``problem.loss`` are the case's own.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator

import numpy as np
import torch
from array_api_compat import array_namespace

from crosscheck.declaring.loop import at_of, loop_of, take
from crosscheck.declaring.problem import Problem, recording
from crosscheck.running.record import Recorder, Trajectory

#: Epochs between two calls of ``train``'s ``progress``: often enough for a display that
#: refreshes every 0.1 s, rare enough to cost nothing (one call per 100+ updates).
PROGRESS_EVERY = 100


def smoke() -> None:
    """One autograd step on a tiny float64 tensor (about 1 ms): a torch that imports but cannot
    compute fails here, before any model runs (see ``frameworks.load``)."""
    t = torch.ones(2, dtype=torch.float64, requires_grad=True)
    (t * t).sum().backward()


def _loss(problem: Problem, loop, params: dict, xb, yb, kw: dict, tap):
    """A step's loss plus any penalty at ``params`` on the batch ``xb``, ``yb`` (``kw``: its
    noise and state, where declared), and the new state the forward returns (the old one
    where none is declared): written once, for training and for one step's gradients."""
    xp = array_namespace(xb)
    out = problem.forward(xp, params, xb, tap=tap, **kw)
    pred, new_state = out if loop.stateful else (out, kw.get("state", {}))
    value = problem.loss(xp, pred, yb)
    if loop.penalty is not None:
        value = value + loop.penalty(xp, params)
    return value, new_state


def gradients(problem: Problem, params: dict, sample=None, dtype: str = "float64",
              scale: dict | None = None, lift: dict | None = None) -> dict:
    """One step's autograd gradients at ``params``: of the loss with respect to every
    parameter and to every intermediate the forward taps (``retain_grad``).

    ``sample`` is the step: its :class:`crosscheck.declaring.loop.At` (a real loop's, with
    the run's own state), or the sample of a per-sample problem (None: the whole batch).
    ``scale``: tap name -> array; the gradient that flows back through that tapped tensor is
    multiplied by it elementwise (its value unchanged): a derivative left out, as a probe's
    hypothesis (:mod:`crosscheck.judging.probes`). ``lift``: tap name -> a positive number that
    replaces that tapped tensor's values at or below 0, its gradient passing unchanged: a
    ReLU after it then passes every unit (a probe's hypothesis of a mask left out).
    """
    loop, at = loop_of(problem), at_of(sample)
    tdtype = getattr(torch, dtype)
    convert = _converter(tdtype)
    p = {k: torch.tensor(np.asarray(v), dtype=tdtype, requires_grad=True) for k, v in params.items()}
    state = {k: convert(v) for k, v in (at.state or loop.state0).items()}
    index = loop.feed.index(at.step)
    xb, yb = (take(convert(a), index, loop.feed.axis, loop.feed.element) for a in (problem.x, problem.y))
    named: dict = {}

    def tap(name, t):
        if lift is not None and name in lift:
            fixed = t.detach()
            t = (t - fixed) + torch.where(fixed > 0, fixed, torch.as_tensor(lift[name], dtype=t.dtype))
        if scale is not None and name in scale:
            fixed = t.detach()
            t = fixed + (t - fixed) * torch.as_tensor(np.asarray(scale[name]), dtype=t.dtype)
        if t.requires_grad:
            t.retain_grad()
        named[name] = t
        return t

    loss, _ = _loss(problem, loop, p, xb, yb, loop.kwargs(at.step, state, convert), tap)
    loss.backward()
    return {"loss": loss.item(), "params": {k: v.grad.numpy() for k, v in p.items()},
            "intermediates": {n: t.grad.numpy() for n, t in named.items() if t.grad is not None}}


def train(problem: Problem, dtype: str = "float64",
          progress: Callable[[int], None] | None = None) -> Trajectory:
    """The training loop with torch autograd's gradients, every step recorded: the general
    loop (:func:`crosscheck.declaring.loop.loop_of`), of which the documents' loops are the
    plain instance.

    A step is its batch (and noise) from the feed, the forward (which may return a new carried
    state, detached for the next step), the loss plus any penalty, ``torch.autograd.grad``, and
    the update: ``p -= lr * g`` in place for the plain rule, else ``torch.optim``'s optimizer
    as declared. Recording it costs a few NumPy copies and no conversions: the parameters'
    NumPy views are made once (they see every in-place update), a gradient's ``.numpy()`` is
    a view of torch's memory, the record's buffers are preallocated, and an unshuffled
    feed's batches are cut once.

    ``progress(steps_done)``, if given, is called every ``PROGRESS_EVERY`` epochs and at the end.
    """
    loop = loop_of(problem)
    feed, stateful = loop.feed, loop.stateful
    tdtype = getattr(torch, dtype)
    convert = _converter(tdtype)
    forward = problem.forward
    params = {k: torch.tensor(v, dtype=tdtype, requires_grad=True) for k, v in problem.init.items()}
    leaves = tuple(params.values())
    x, y = convert(problem.x), convert(problem.y)
    xp = array_namespace(x)
    lr = problem.lr
    opt = None if loop.optimizer.plain else loop.optimizer.for_torch(list(leaves), lr)
    steps, per_epoch = feed.steps, feed.per_epoch
    rec = Recorder(problem.init, steps=steps, epochs=problem.epochs, dtype=dtype)
    # (buffer of a parameter's values, of its gradients, its live NumPy view), in order
    record = [(rec.params[k], rec.grads[k], p.detach().numpy()) for k, p in params.items()]
    step_loss, masks = rec.step_loss, problem.masks
    state = {k: convert(v) for k, v in loop.state0.items()}
    if stateful:
        rec.carried(0, {n: v.numpy() for n, v in state.items()})
    pre: dict = {}
    tap = recording(pre)

    def batch(k: int) -> tuple[torch.Tensor, torch.Tensor]:
        index = feed.index(k)
        return tuple(take(a, index, feed.axis, feed.element) for a in (x, y))  # type: ignore[return-value]
    cut = None if feed.shuffled else [batch(j) for j in range(per_epoch)]   # every epoch's the same
    k = 0
    for epoch in range(problem.epochs):
        total_loss = 0.0
        for j in range(per_epoch):
            xb, yb = cut[j] if cut is not None else batch(k)
            loss, new_state = _loss(problem, loop, params, xb, yb, loop.kwargs(k, state, convert), tap)
            grads = torch.autograd.grad(loss, leaves)
            with torch.no_grad():
                if opt is None:
                    for p, g in zip(leaves, grads, strict=True):
                        p -= lr * g
                else:
                    for p, g in zip(leaves, grads, strict=True):
                        p.grad = g
                    opt.step()
                for n in masks:
                    rec.mask(n, k, (pre[n] > 0).numpy())
            step_loss[k] = value = loss.item()
            total_loss += value   # the per-sample loop's ``total_loss += loss.item()``
            for (values, gradients, now), g in zip(record, grads, strict=True):
                gradients[k] = g.numpy()
                values[k + 1] = now
            if stateful:
                state = {n: v.detach() for n, v in new_state.items()}
                rec.carried(k + 1, {n: v.numpy() for n, v in state.items()})
            k += 1
            if rec.release_every and k % rec.release_every == 0:
                rec.release()   # a long record's pages back to its file
        rec.epoch_loss[epoch] = total_loss if per_epoch > 1 else value
        if progress is not None and ((epoch + 1) % PROGRESS_EVERY == 0 or epoch + 1 == problem.epochs):
            progress(k)
    rec.k = k
    if problem.loop is not None:   # a declared loop: its feed is the record's
        return rec.finish(case=problem.case, framework="torch", hyper=problem.hyper, pred_train=np.zeros(0),
                          feed=feed)
    with torch.no_grad():
        pred_train = forward(xp, params, x).numpy()
        x_test = torch.tensor(problem.x_test, dtype=tdtype)
        pred_test = forward(xp, params, x_test).numpy() if len(x_test) else np.zeros(0)
    return rec.finish(case=problem.case, framework="torch", hyper=problem.hyper,
                      pred_train=pred_train, pred_test=pred_test)


# --------------------------------------------------------------------------- the general loop
def _converter(tdtype) -> Callable[[np.ndarray], torch.Tensor]:
    """NumPy -> torch: floating arrays in the run's dtype, integer and boolean ones as they are."""
    def convert(a: np.ndarray) -> torch.Tensor:
        a = np.asarray(a)   # (np.ascontiguousarray would make a 0-d array 1-d)
        t = torch.from_numpy(a if a.flags.c_contiguous and a.flags.writeable else np.array(a))
        return t.to(tdtype) if a.dtype.kind == "f" else t
    return convert


def relu_spellings() -> dict[str, Callable]:
    """torch's ways to write a ReLU, by how a forward spells them (``crosscheck kinks``)."""
    import torch.nn.functional as F

    return {
        "torch.relu(x)": torch.relu,
        "F.relu(x)": F.relu,
        "x.clamp(min=0)": lambda t: t.clamp(min=0),
        "torch.maximum(x, 0)": lambda t: torch.maximum(t, torch.zeros_like(t)),
        "torch.where(x > 0, x, 0)": lambda t: torch.where(t > 0, t, torch.zeros_like(t)),
    }


def derivative(fn: Callable, x: np.ndarray) -> np.ndarray:
    """The gradient of ``sum(fn(x))`` at the float64 array ``x``: an elementwise ``fn``'s derivative."""
    t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    fn(t).sum().backward()
    return t.grad.numpy()


def reference_update(optimizer, lr: float) -> Callable:
    """``optimizer`` run by ``torch.optim`` on NumPy arrays: ``update(params, grads, state)
    -> (params, state)``, the optimizer made at the first call and kept in ``state``."""
    def update(params, grads, state: dict):
        if "torch" not in state:
            leaves = {k: torch.tensor(np.array(v, np.float64)) for k, v in params.items()}
            state["torch"] = (leaves, optimizer.for_torch(list(leaves.values()), lr))
        leaves, opt = state["torch"]
        with torch.no_grad():
            for k, p in leaves.items():
                p.copy_(torch.from_numpy(np.asarray(params[k], np.float64)))
                p.grad = torch.from_numpy(np.array(grads[k], np.float64))
        opt.step()
        return {k: p.detach().numpy().copy() for k, p in leaves.items()}, state
    return update


@contextlib.contextmanager
def beside_helper() -> Iterator[None]:
    """torch on one thread fewer than the cores, while the helper process computes beside it.

    torch would start a thread per core, and on a machine whose cores the two processes
    already fill, its threads wait on each other at every one of a step's small operations.
    The thread count is put back afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) - 1))
    try:
        yield
    finally:
        torch.set_num_threads(threads)
