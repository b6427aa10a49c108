"""Any case or model in JAX: its forward pass and loss, written once against the array
namespace ``xp`` (``jax.numpy``), with gradients from ``jax.value_and_grad``; training
compiled with ``jax.jit`` and ``lax.scan``.

Where the hand-written code and JAX's habits differ, the hand-written code wins:

* float64: ``jax_enable_x64`` is switched on here, and every run's arrays are checked
  to really be float64 (``Trajectory.check_dtype``); JAX would compute in float32.
* The update is ``p - lr * grad`` on every parameter after all gradients are taken (no
  optax).
* Per-sample training keeps a plain loop's order: a ``lax.scan`` over samples inside a
  ``lax.scan`` over epochs, the epoch's loss summed in the carry sample by sample as a
  ``total_loss += loss`` does (``jnp.sum`` would add them in another order).
* Data and initial values are copied in from the case's NumPy arrays; ``jax.random``
  would not reproduce NumPy's stream.

Nothing here knows a case: ``problem.forward`` and ``problem.loss`` are the case's own.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax

from crosscheck.running import environment

jax.config.update("jax_enable_x64", True)

# Compiled training loops are kept between runs (XLA keys them by JAX version, flags
# and program): a warm run skips about 1.3 s of compilation. CROSSCHECK_JAX_CACHE=off
# disables it; any other value is the folder to use.
_CACHE = environment.jax_cache()
if _CACHE is not None:
    jax.config.update("jax_compilation_cache_dir", _CACHE)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

import jax.numpy as jnp  # noqa: E402  (after enabling x64)
import numpy as np  # noqa: E402
from array_api_compat import array_namespace  # noqa: E402
from jax import lax  # noqa: E402

from crosscheck.declaring.loop import at_of  # noqa: E402
from crosscheck.declaring.problem import Problem, recording  # noqa: E402
from crosscheck.running.record import Recorder, Trajectory  # noqa: E402


def smoke() -> None:
    """Start the backend and move one float64 array onto it (about 20 ms, which the first run
    would spend anyway): a JAX that imports but cannot compute fails here, before any model
    runs (see ``frameworks.load``)."""
    jax.device_put(np.ones(2)).block_until_ready()


@functools.partial(jax.jit, static_argnames=("forward", "loss", "mode", "epochs", "masks"))
def _train(params, x, y, lr, *, forward, loss, mode, epochs, masks):
    xp = array_namespace(x)

    def loss_fn(p, xb, yb):
        pre: dict = {}
        err = loss(xp, forward(xp, p, xb, tap=recording(pre)), yb)
        return err, {n: pre[n] > 0 for n in masks}

    def step(p, xb, yb):
        (value, mask), grads = jax.value_and_grad(loss_fn, has_aux=True)(p, xb, yb)
        new = {k: p[k] - lr * grads[k] for k in p}
        return new, (value, grads, new, mask)

    if mode == "batch":
        final, (value, grads, seq, mask) = lax.scan(lambda p, _: step(p, x, y), params, None,
                                                    length=epochs)
        return final, value, value, grads, seq, mask

    def sample(carry, xy):
        p, total_loss = carry
        p, rec = step(p, *xy)
        return (p, total_loss + rec[0]), rec

    def epoch(p, _):
        (p, total_loss), rec = lax.scan(sample, (p, jnp.zeros((), x.dtype)), (x, y))
        return p, (total_loss, rec)

    final, (epoch_loss, (value, grads, seq, mask)) = lax.scan(epoch, params, None, length=epochs)
    flat = functools.partial(jax.tree.map, lambda a: a.reshape(-1, *a.shape[2:]))
    return final, epoch_loss, flat(value), flat(grads), flat(seq), flat(mask)


def _samples(problem: Problem, a):
    """What ``lax.scan`` runs over: one sample per step, as :meth:`Problem.sample` gives it."""
    return a[:, None] if problem.mode == "sgd" and problem.sample_slice else a


def gradients(problem: Problem, params: dict, sample: int | None = None,
              dtype: str = "float64") -> dict:
    """One step's autograd gradients at ``params``: of the loss with respect to every
    parameter, and to every tapped intermediate by a vjp with respect to a zero
    perturbation added at each tap (d loss / d (t + eps) at eps = 0 is d loss / d t)."""
    if problem.loop is not None:
        return _gradients_at(problem, params, at_of(sample), dtype)
    jdtype = jnp.dtype(dtype)
    p = {k: jnp.asarray(v, jdtype) for k, v in params.items()}
    x, y = (jnp.asarray(a, jdtype) for a in (problem.x, problem.y))
    xb, yb = (x, y) if problem.mode == "batch" else (problem.sample(x, sample), problem.sample(y, sample))
    xp = array_namespace(xb)
    shapes: dict = {}
    problem.forward(xp, p, xb, tap=recording(shapes))
    eps = {n: jnp.zeros_like(t) for n, t in shapes.items()}

    def loss_fn(p, eps):
        return problem.loss(xp, problem.forward(xp, p, xb, tap=lambda name, t: t + eps[name]), yb)

    value, vjp = jax.vjp(loss_fn, p, eps)
    g_params, g_named = vjp(jnp.ones_like(value))
    return {"loss": float(value), "params": {k: np.asarray(g_params[k]) for k in params},
            "intermediates": {n: np.asarray(v) for n, v in g_named.items()}}


def train(problem: Problem, dtype: str = "float64",
          progress: Callable[[int], None] | None = None) -> Trajectory:
    """The hand-written code's training loop, compiled, with JAX autograd gradients.

    The whole run is one compiled call, or for a long record (:func:`crosscheck.running.record.buffer`
    spills it) one call per range of epochs, each continuing from the last one's parameters:
    what the calls return is written into the record and dropped. ``progress``, if given,
    hears of each call's end.
    """
    if problem.loop is not None:
        return train_loop(problem, dtype, progress)
    jdtype = jnp.dtype(dtype)
    params = {k: jnp.asarray(v, jdtype) for k, v in problem.init.items()}
    x, y = (jnp.asarray(a, jdtype) for a in (problem.x, problem.y))
    rec = Recorder(problem.init, steps=problem.steps, epochs=problem.epochs, dtype=jdtype)
    per_epoch = problem.steps // max(problem.epochs, 1)
    chunk = problem.epochs
    if rec.release_every:   # spilled: ranges of epochs of about a record chunk each
        chunk = max(1, rec.release_every // max(per_epoch, 1))
    epoch, xs, ys, lr = 0, _samples(problem, x), _samples(problem, y), jnp.asarray(problem.lr, jdtype)
    while epoch < problem.epochs:
        n = min(chunk, problem.epochs - epoch)
        params, epoch_loss, loss, grads, seq, mask = _train(
            params, xs, ys, lr, forward=problem.forward, loss=problem.loss, mode=problem.mode, epochs=n,
            masks=problem.masks)
        a, b = epoch * per_epoch, (epoch + n) * per_epoch
        rec.epoch_loss[epoch:epoch + n] = np.asarray(epoch_loss)
        rec.step_loss[a:b] = np.asarray(loss)
        # Pytrees sort dict keys (W1, W2, b1, b2); the record keeps the declared order.
        for k in problem.init:
            rec.grads[k][a:b] = np.asarray(grads[k])
            rec.params[k][a + 1:b + 1] = np.asarray(seq[k])
        for k in problem.masks:
            m = np.asarray(mask[k])
            if k not in rec.masks:
                rec.mask(k, a, m[0])
            rec.masks[k][a:b] = m
        del loss, grads, seq, mask
        rec.release()
        epoch += n
        rec.k = b
        if progress is not None:
            progress(b)
    xp = array_namespace(x)
    pred_train = problem.forward(xp, params, x)
    pred_test = (problem.forward(xp, params, jnp.asarray(problem.x_test, jdtype)) if problem.x_test.size
                 else ())
    return rec.finish(case=problem.case, framework="jax", hyper=problem.hyper,
                      pred_train=np.asarray(pred_train), pred_test=np.asarray(pred_test, jdtype))


# --------------------------------------------------------------------------- the general loop
def _convert(jdtype):
    """NumPy -> JAX: floating arrays in the run's dtype, integer and boolean ones as they are."""
    def convert(a):
        a = np.asarray(a)
        return jnp.asarray(a, jdtype) if a.dtype.kind == "f" else jnp.asarray(a)
    return convert


def _loss_fn(problem: Problem, xb, yb, noise, state, tap=None):
    """The step's loss plus penalty as a function of the parameters, with (new state, tapped
    values) beside it."""
    loop = problem.loop
    xp = array_namespace(xb)

    def loss_fn(p):
        named: dict = {}
        kw = {}
        if loop.noisy:
            kw["noise"] = noise
        if loop.stateful:
            kw["state"] = state
        out = problem.forward(xp, p, xb, tap=tap or recording(named), **kw)
        pred, new_state = out if loop.stateful else (out, state)
        value = problem.loss(xp, pred, yb)
        if loop.penalty is not None:
            value = value + loop.penalty(xp, p)
        return value, (new_state, named)
    return loss_fn


@functools.cache
def _step(problem_forward, problem_loss, loop_key, masks):
    """The compiled step of a general loop: loss, gradients, the update (optax, or p - lr * g)
    and the new state; one per forward, loss and loop declaration (compiled once per batch
    shape)."""
    problem, tx = _STEPS[loop_key]

    @jax.jit
    def step(params, opt_state, state, xb, yb, noise, lr):
        loss_fn = _loss_fn(problem, xb, yb, noise, state)
        (value, (new_state, named)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
        if tx is None:
            new = {k: params[k] - lr * grads[k] for k in params}
        else:
            import optax

            updates, opt_state = tx.update(grads, opt_state, params)
            new = optax.apply_updates(params, updates)
        new_state = jax.lax.stop_gradient(new_state)
        return new, opt_state, new_state, value, grads, {n: named[n] > 0 for n in masks}
    return step


_STEPS: dict = {}


def train_loop(problem: Problem, dtype: str = "float64",
               progress: Callable[[int], None] | None = None) -> Trajectory:
    """The general loop (:mod:`crosscheck.declaring.loop`) with JAX's gradients and optax's optimizer as
    declared (``p - lr * g`` for the plain rule): one compiled step per update, in order,
    each step's batch and noise from the feed, the new state carried (no gradient through it)."""
    loop = problem.loop
    jdtype = jnp.dtype(dtype)
    convert = _convert(jdtype)
    params = {k: jnp.asarray(v, jdtype) for k, v in problem.init.items()}
    tx = None if loop.optimizer.plain else loop.optimizer.for_jax(problem.lr)
    key = (id(problem.forward), id(problem.loss), id(loop.penalty), loop.optimizer, problem.lr,
           loop.noisy, loop.stateful, dtype)
    _STEPS.setdefault(key, (problem, tx))
    step = _step(problem.forward, problem.loss, key, problem.masks)
    opt_state = None if tx is None else _STEPS[key][1].init(params)
    state = {k: convert(v) for k, v in loop.state0.items()}
    lr = jnp.asarray(problem.lr, jdtype)
    steps, per_epoch = loop.feed.steps, loop.feed.per_epoch
    rec = Recorder(problem.init, steps=steps, epochs=problem.epochs, dtype=jdtype)
    rec.carried(0, {k: np.asarray(v) for k, v in state.items()})
    total = 0.0
    for k in range(steps):
        xb, yb = loop.batch(problem.x, k, convert), loop.batch(problem.y, k, convert)
        noise = {n: convert(v) for n, v in loop.feed.noise_at(k).items()}
        params, opt_state, state, value, grads, masks = step(params, opt_state, state, xb, yb, noise, lr)
        value = float(value)
        rec.step(value, {n: np.asarray(grads[n]) for n in problem.init},
                 {n: np.asarray(params[n]) for n in problem.init},
                 {n: np.asarray(m) for n, m in masks.items()})
        rec.carried(k + 1, {n: np.asarray(v) for n, v in state.items()})
        total = value if k % per_epoch == 0 else total + value
        if (k + 1) % per_epoch == 0:
            rec.epoch_loss[k // per_epoch] = total
    if progress is not None:
        progress(steps)
    return rec.finish(case=problem.case, framework="jax", hyper=problem.hyper, pred_train=np.zeros(0),
                      feed=loop.feed)


def _gradients_at(problem: Problem, params: dict, at, dtype: str) -> dict:
    """:func:`gradients` for a general loop's step ``at`` (a :class:`crosscheck.declaring.loop.At`)."""
    jdtype = jnp.dtype(dtype)
    convert = _convert(jdtype)
    loop = problem.loop
    p = {k: jnp.asarray(v, jdtype) for k, v in params.items()}
    xb, yb = loop.batch(problem.x, at.step, convert), loop.batch(problem.y, at.step, convert)
    noise = {n: convert(v) for n, v in loop.feed.noise_at(at.step).items()}
    state = {k: convert(v) for k, v in (at.state or loop.state0).items()}
    shapes: dict = {}
    _loss_fn(problem, xb, yb, noise, state, tap=recording(shapes))(p)
    eps = {n: jnp.zeros_like(t) for n, t in shapes.items()}

    def loss_fn(p, eps):
        return _loss_fn(problem, xb, yb, noise, state, tap=lambda name, t: t + eps[name])(p)[0]

    value, vjp = jax.vjp(loss_fn, p, eps)
    g_params, g_named = vjp(jnp.ones_like(value))
    return {"loss": float(value), "params": {k: np.asarray(g_params[k]) for k in params},
            "intermediates": {n: np.asarray(v) for n, v in g_named.items()}}


# ------------------------------------------------------------------ kinks, optimizers
def relu_spellings() -> dict[str, Callable]:
    """JAX's ways to write a ReLU, by how a forward spells them (``crosscheck kinks``)."""
    return {
        "jax.nn.relu(x)": jax.nn.relu,
        "jnp.maximum(x, 0)": lambda t: jnp.maximum(t, 0.0),
        "jnp.where(x > 0, x, 0)": lambda t: jnp.where(t > 0, t, 0.0),
        "jnp.clip(x, 0)": lambda t: jnp.clip(t, 0.0),
    }


def derivative(fn: Callable, x: np.ndarray) -> np.ndarray:
    """The gradient of ``sum(fn(x))`` at the float64 array ``x``: an elementwise ``fn``'s derivative."""
    return np.asarray(jax.grad(lambda t: jnp.sum(fn(t)))(jnp.asarray(x, jnp.float64)))


def reference_update(optimizer, lr: float) -> Callable:
    """``optimizer`` run by optax on NumPy arrays: ``update(params, grads, state) ->
    (params, state)``, optax's state kept in ``state``."""
    tx = optimizer.for_jax(lr)

    def update(params, grads, state):
        p = {k: jnp.asarray(v, jnp.float64) for k, v in params.items()}
        if "optax" not in state:
            state["optax"] = tx.init(p)
        u, state["optax"] = tx.update({k: jnp.asarray(v, jnp.float64) for k, v in grads.items()},
                                      state["optax"], p)
        return {k: np.asarray(p[k] + u[k]) for k in p}, state
    return update
