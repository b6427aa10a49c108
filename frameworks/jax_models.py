"""Any case or model in JAX: its forward pass and loss, written once against the array
namespace ``xp`` (``jax.numpy``), with gradients from ``jax.value_and_grad``; training
compiled with ``jax.jit`` and ``lax.scan``.

Where the hand-written code and JAX's habits differ, the hand-written code wins:

* float64: ``jax_enable_x64`` is switched on here, and every run's arrays are checked
  to really be float64 (``Trajectory.check_dtype``); JAX would compute in float32.
* The update is ``p - lr * grad`` on every parameter after all gradients are taken, or where
  a model declares an optimizer, optax's as declared (crosscheck.optim).
* The steps keep a plain loop's order: a ``lax.scan`` over each epoch's steps inside a
  ``lax.scan`` over epochs, each step's batch and noise from the model's feed, the epoch's
  loss summed in the carry step by step as a ``total_loss += loss`` does (``jnp.sum`` would
  add them in another order).
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

from crosscheck.declaring.loop import at_of, loop_of  # noqa: E402
from crosscheck.declaring.problem import Problem, recording  # noqa: E402
from crosscheck.running.record import Recorder, Trajectory  # noqa: E402


def smoke() -> None:
    """Start the backend and move one float64 array onto it (about 20 ms, which the first run
    would spend anyway): a JAX that imports but cannot compute fails here, before any model
    runs (see ``frameworks.load``)."""
    jax.device_put(np.ones(2)).block_until_ready()


@functools.partial(jax.jit, static_argnames=("forward", "loss", "penalty", "tx", "noisy", "stateful", "masks",
                                             "axis", "element", "whole"))
def _train(params, opt_state, state, lr, x, y, index, last, noise, last_noise, *, forward, loss, penalty, tx,
           noisy, stateful, masks, axis, element, whole):
    """Epochs of the general loop, compiled: a ``lax.scan`` over epochs, in each a scan over
    its steps but the last (``index``: (epochs, steps - 1, batch) sample indices, the same
    batch size each) and then its last step (``last``: (epochs, its batch), which may be
    smaller). The epoch's loss is summed in the carry step by step, as a plain loop's
    ``total_loss += loss`` does (``jnp.sum`` would add in another order). ``whole``: every
    step sees all of x in order (full batch, unshuffled), taken as it is."""
    def batch(a, i):
        if whole:
            return a
        if element:
            return a[i]
        return jnp.take(a, i, axis=axis if a.ndim > 1 else 0)

    def loss_fn(p, xb, yb, nz, st):
        named: dict = {}
        value, new_state = _loss(forward, loss, penalty, noisy, stateful, p, xb, yb, nz, st, recording(named))
        return value, (new_state, {n: named[n] > 0 for n in masks})

    def step(carry, inputs):
        p, o, st, total_loss = carry
        i, nz = inputs
        (value, (new_state, mask)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            p, batch(x, i), batch(y, i), nz, st)
        if tx is None:
            new = {k: p[k] - lr * grads[k] for k in p}
        else:
            import optax

            updates, o = tx.update(grads, o, p)
            new = optax.apply_updates(p, updates)
        new_state = lax.stop_gradient(new_state)
        return (new, o, new_state, total_loss + value), (value, grads, new, mask, new_state)

    def epoch(carry, inputs):
        p, o, st = carry
        i, nz, i_last, nz_last = inputs
        (p, o, st, total), regular = lax.scan(step, (p, o, st, jnp.zeros((), x.dtype)), (i, nz))
        (p, o, st, total), final = step((p, o, st, total), (i_last, nz_last))
        return (p, o, st), (total, regular, final)

    (params, opt_state, state), (epoch_loss, regular, final) = lax.scan(
        epoch, (params, opt_state, state), (index, noise, last, last_noise))
    return params, opt_state, state, epoch_loss, regular, final


@functools.cache
def _transform(optimizer, lr: float):
    """The declared optimizer as optax's, one object per declaration and rate (the compiled
    loop is keyed by it)."""
    return None if optimizer.plain else optimizer.for_jax(lr)


def _in_order(regular, final):
    """Per step, in order: each epoch's regular steps, then its last. A last batch smaller than
    the rest (a mask has a row per sample) gets its missing rows read "on", as
    :meth:`Recorder.mask` pads them."""
    regular, final = np.asarray(regular), np.asarray(final)
    if regular.shape[1] and final.shape[1:] != regular.shape[2:]:
        pad = np.ones((final.shape[0], regular.shape[2] - final.shape[1], *final.shape[2:]), final.dtype)
        final = np.concatenate([final, pad], axis=1)
    both = np.concatenate([regular, final[:, None]], axis=1)
    return both.reshape(-1, *both.shape[2:])


def _indices(feed) -> tuple[np.ndarray, np.ndarray]:
    """Every step's sample indices as :func:`_train` scans them: (epochs, steps - 1, batch) for
    each epoch's steps but the last, and (epochs, its batch) for the last (element steps
    without the batch axis)."""
    per, size = feed.per_epoch, feed.batch
    order = np.asarray(feed.order)
    index = order[:, :(per - 1) * size].reshape(len(order), per - 1, size)
    last = order[:, (per - 1) * size:]
    return (index[..., 0], last[..., 0]) if feed.element else (index, last)


def _loss(forward, loss, penalty, noisy: bool, stateful: bool, p, xb, yb, noise, state, tap):
    """A step's loss plus any penalty at ``p`` on the batch ``xb``, ``yb`` with its noise and
    state (each passed only where declared), and the new state the forward returns (the old
    one where none is declared): written once, for the compiled loop and one step's gradients."""
    xp = array_namespace(xb)
    kw = {}
    if noisy:
        kw["noise"] = noise
    if stateful:
        kw["state"] = state
    out = forward(xp, p, xb, tap=tap, **kw)
    pred, new_state = out if stateful else (out, state)
    value = loss(xp, pred, yb)
    if penalty is not None:
        value = value + penalty(xp, p)
    return value, new_state


def gradients(problem: Problem, params: dict, sample=None, dtype: str = "float64",
              scale: dict | None = None, lift: dict | None = None) -> dict:
    """One step's autograd gradients at ``params``: of the loss with respect to every
    parameter, and to every tapped intermediate by a vjp with respect to a zero
    perturbation added at each tap (d loss / d (t + eps) at eps = 0 is d loss / d t).

    ``sample`` is the step: its :class:`crosscheck.declaring.loop.At` (a real loop's, with
    the run's own state), or the sample of a per-sample problem (None: the whole batch).
    ``scale``: tap name -> array; the gradient that flows back through that tapped tensor is
    multiplied by it elementwise (its value unchanged): a probe's hypothesis; ``lift``: tap
    name -> a positive number that replaces that tapped tensor's values at or below 0, its
    gradient passing unchanged (a ReLU after it passes every unit)."""
    loop, at = loop_of(problem), at_of(sample)
    jdtype = jnp.dtype(dtype)
    convert = _convert(jdtype)
    p = {k: jnp.asarray(v, jdtype) for k, v in params.items()}
    xb, yb = loop.batch(problem.x, at.step, convert), loop.batch(problem.y, at.step, convert)
    noise = {n: convert(v) for n, v in loop.feed.noise_at(at.step).items()}
    state = {k: convert(v) for k, v in (at.state or loop.state0).items()}
    step = functools.partial(_loss, problem.forward, problem.loss, loop.penalty, loop.noisy, loop.stateful)
    shapes: dict = {}
    step(p, xb, yb, noise, state, recording(shapes))
    eps = {n: jnp.zeros_like(t) for n, t in shapes.items()}

    factors = {n: jnp.asarray(v, jdtype) for n, v in (scale or {}).items()}
    lifts = {n: jnp.asarray(v, jdtype) for n, v in (lift or {}).items()}

    def scaled(name, t):
        if name in lifts:
            fixed = jax.lax.stop_gradient(t)
            t = (t - fixed) + jnp.where(fixed > 0, fixed, lifts[name])
        if name not in factors:
            return t
        fixed = jax.lax.stop_gradient(t)
        return fixed + (t - fixed) * factors[name]

    def loss_fn(p, eps):
        return step(p, xb, yb, noise, state, lambda name, t: scaled(name, t + eps[name]))[0]

    value, vjp = jax.vjp(loss_fn, p, eps)
    g_params, g_named = vjp(jnp.ones_like(value))
    return {"loss": float(value), "params": {k: np.asarray(g_params[k]) for k in params},
            "intermediates": {n: np.asarray(v) for n, v in g_named.items()}}


def train(problem: Problem, dtype: str = "float64",
          progress: Callable[[int], None] | None = None) -> Trajectory:
    """The training loop, compiled, with JAX autograd's gradients: the general loop
    (:func:`crosscheck.declaring.loop.loop_of`), of which the documents' loops are the plain
    instance. The update is ``p - lr * g`` for the plain rule, else optax's optimizer as
    declared; the state the forward returns is carried (no gradient through it).

    The whole run is one compiled call, or for a long record (:func:`crosscheck.running.record.buffer`
    spills it) one call per range of epochs, each continuing from the last one's parameters,
    optimizer state and carried state: what the calls return is written into the record and
    dropped. ``progress``, if given, hears of each call's end.
    """
    loop = loop_of(problem)
    feed = loop.feed
    jdtype = jnp.dtype(dtype)
    convert = _convert(jdtype)
    params = {k: jnp.asarray(v, jdtype) for k, v in problem.init.items()}
    x, y = convert(problem.x), convert(problem.y)
    tx = _transform(loop.optimizer, problem.lr)
    opt_state = None if tx is None else tx.init(params)
    state = {k: convert(v) for k, v in loop.state0.items()}
    per_epoch, epochs = feed.per_epoch, problem.epochs
    rec = Recorder(problem.init, steps=feed.steps, epochs=epochs, dtype=jdtype)
    if loop.stateful:
        rec.carried(0, {k: np.asarray(v) for k, v in state.items()})
    chunk = epochs
    if rec.release_every:   # spilled: ranges of epochs of about a record chunk each
        chunk = max(1, rec.release_every // max(per_epoch, 1))
    whole = not feed.shuffled and per_epoch == 1 and feed.batch == feed.samples
    steps = np.arange(feed.steps).reshape(epochs, per_epoch)
    index, last = (np.zeros((epochs, 0), int),) * 2 if whole else _indices(feed)
    names = list(feed.noise[0]) if feed.noise else []
    noise = {n: np.stack([feed.noise[k][n] for k in steps[:, :-1].ravel()]).reshape(
        epochs, per_epoch - 1, *np.shape(feed.noise[0][n])) if per_epoch > 1 else
        np.zeros((epochs, 0, *np.shape(feed.noise[0][n]))) for n in names}
    last_noise = {n: np.stack([feed.noise[k][n] for k in steps[:, -1]]) for n in names}
    kw = dict(forward=problem.forward, loss=problem.loss, penalty=loop.penalty, tx=tx, noisy=loop.noisy,
              stateful=loop.stateful, masks=problem.masks, axis=feed.axis, element=feed.element, whole=whole)
    epoch, lr = 0, jnp.asarray(problem.lr, jdtype)
    while epoch < epochs:
        n = min(chunk, epochs - epoch)
        e = slice(epoch, epoch + n)
        params, opt_state, state, epoch_loss, regular, final = _train(
            params, opt_state, state, lr, x, y, index[e], last[e],
            {k: convert(v[e]) for k, v in noise.items()}, {k: convert(v[e]) for k, v in last_noise.items()},
            **kw)
        a, b = epoch * per_epoch, (epoch + n) * per_epoch
        value, grads, seq, mask, carried = regular
        f_value, f_grads, f_seq, f_mask, f_carried = final
        rec.epoch_loss[e] = np.asarray(epoch_loss)
        rec.step_loss[a:b] = _in_order(value, f_value)
        # Pytrees sort dict keys (W1, W2, b1, b2); the record keeps the declared order.
        for k in problem.init:
            rec.grads[k][a:b] = _in_order(grads[k], f_grads[k])
            rec.params[k][a + 1:b + 1] = _in_order(seq[k], f_seq[k])
        for k in problem.masks:
            m = _in_order(mask[k], f_mask[k])
            if k not in rec.masks:
                rec.mask(k, a, m[0])
            rec.masks[k][a:b] = m
        for k in rec.state:
            rec.state[k][a + 1:b + 1] = _in_order(carried[k], f_carried[k])
        del value, grads, seq, mask, carried, regular, final
        rec.release()
        epoch += n
        rec.k = b
        if progress is not None:
            progress(b)
    if problem.loop is not None:   # a declared loop: its feed is the record's
        return rec.finish(case=problem.case, framework="jax", hyper=problem.hyper, pred_train=np.zeros(0),
                          feed=feed)
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
