"""The six cases in JAX: pure forward functions over a params dict; gradients from
``jax.value_and_grad``; training compiled with ``jax.jit`` and ``lax.scan``.

Where the document and JAX's habits differ, the document wins:

* float64: ``jax_enable_x64`` is switched on here, and every run's arrays are checked
  to really be float64 (``Trajectory.check_dtype``); JAX would compute in float32.
* Biases are 0-d arrays, one scalar shared by every unit.
* The update is the document's ``p - lr * grad`` on every parameter after all
  gradients are taken (no optax).
* SGD keeps the document's order: a ``lax.scan`` over samples inside a ``lax.scan``
  over epochs, the epoch's loss summed in the carry sample by sample as the
  document's ``total_loss += loss`` (``jnp.sum`` would add them in another order).
* ReLU is ``jax.nn.relu``, whose derivative at exactly 0 is 0, as the document's
  ``(x > 0)``; ``jnp.maximum(x, 0)`` gives 0.5 there (see ``crosscheck kinks``).
  LeakyReLU is written ``where(x > 0, ...)``: ``jax.nn.leaky_relu`` takes slope 1 at 0.
* Data and initial values come from the reference's seeded NumPy draw, copied in;
  ``jax.random`` would not reproduce NumPy's stream.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable

import jax

jax.config.update("jax_enable_x64", True)

# Compiled training loops are kept between runs (XLA keys them by JAX version, flags
# and program): a warm run skips about 1.3 s of compilation. CROSSCHECK_JAX_CACHE=off
# disables it; any other value is the folder to use.
_CACHE = os.environ.get("CROSSCHECK_JAX_CACHE") or os.path.join(
    os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "backprop-crosscheck", "jax")
if _CACHE != "off":
    jax.config.update("jax_compilation_cache_dir", _CACHE)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)

import jax.numpy as jnp  # noqa: E402  (after enabling x64)
import numpy as np  # noqa: E402
from jax import lax  # noqa: E402

from crosscheck.problem import Problem  # noqa: E402
from crosscheck.record import Trajectory  # noqa: E402

ACTIVATIONS = {
    "relu": jax.nn.relu,
    "identity": lambda t: t,
    "sigmoid": jax.nn.sigmoid,
    "tanh": jnp.tanh,
    "leakyrelu": lambda t: jnp.where(t > 0, t, 0.01 * t),
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
    h1 = tap("h1", jax.nn.relu(z1))
    z2 = tap("z2", p["w2"] * x + p["b2"])
    h2 = tap("h2", jax.nn.relu(z2))
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


@functools.partial(jax.jit, static_argnames=("forward", "mode", "epochs", "masks"))
def _train(params, x, y, lr, *, forward, mode, epochs, masks):
    def loss_fn(p, xb, yb):
        pre: dict = {}
        out = forward(p, xb, recording(pre))
        err = jnp.mean(jnp.square(yb - out)) if mode == "batch" else (out - yb) ** 2
        return err, {n: pre[n] > 0 for n in masks}

    def step(p, xb, yb):
        (loss, mask), grads = jax.value_and_grad(loss_fn, has_aux=True)(p, xb, yb)
        new = {k: p[k] - lr * grads[k] for k in p}
        return new, (loss, grads, new, mask)

    if mode == "batch":
        final, (loss, grads, seq, mask) = lax.scan(lambda p, _: step(p, x, y), params, None,
                                                   length=epochs)
        return final, loss, loss, grads, seq, mask

    def sample(carry, xy):
        p, total_loss = carry
        p, rec = step(p, *xy)
        return (p, total_loss + rec[0]), rec

    def epoch(p, _):
        (p, total_loss), rec = lax.scan(sample, (p, jnp.zeros((), x.dtype)), (x, y))
        return p, (total_loss, rec)

    final, (epoch_loss, (loss, grads, seq, mask)) = lax.scan(epoch, params, None, length=epochs)
    flat = functools.partial(jax.tree.map, lambda a: a.reshape(-1, *a.shape[2:]))
    return final, epoch_loss, flat(loss), flat(grads), flat(seq), flat(mask)


def gradients(problem: Problem, params: dict, sample: int | None = None,
              dtype: str = "float64") -> dict:
    """One step's autograd gradients at ``params``: of the loss with respect to every
    parameter, and to every tapped intermediate by a vjp with respect to a zero
    perturbation added at each tap (d loss / d (t + eps) at eps = 0 is d loss / d t)."""
    jdtype = jnp.dtype(dtype)
    forward = forward_of(problem)
    p = {k: jnp.asarray(v, jdtype) for k, v in params.items()}
    x, y = (jnp.asarray(a, jdtype) for a in (problem.x, problem.y))
    xb, yb = (x, y) if problem.mode == "batch" else (x[sample], y[sample])
    shapes: dict = {}
    forward(p, xb, recording(shapes))
    eps = {n: jnp.zeros_like(t) for n, t in shapes.items()}

    def loss_fn(p, eps):
        out = forward(p, xb, lambda name, t: t + eps[name])
        return jnp.mean(jnp.square(yb - out)) if problem.mode == "batch" else (out - yb) ** 2

    loss, vjp = jax.vjp(loss_fn, p, eps)
    g_params, g_named = vjp(jnp.ones_like(loss))
    return {"loss": float(loss), "params": {k: np.asarray(g_params[k]) for k in params},
            "intermediates": {n: np.asarray(v) for n, v in g_named.items()}}


def train(problem: Problem, dtype: str = "float64",
          progress: Callable[[int], None] | None = None) -> Trajectory:
    """The document's training loop, compiled, with JAX autograd gradients.

    The whole run is one compiled call: ``progress``, if given, hears of it once, at the end.
    """
    jdtype = jnp.dtype(dtype)
    forward = forward_of(problem)
    params = {k: jnp.asarray(v, jdtype) for k, v in problem.init.items()}
    x, y = (jnp.asarray(a, jdtype) for a in (problem.x, problem.y))
    final, epoch_loss, loss, grads, seq, mask = _train(
        params, x, y, jnp.asarray(problem.lr, jdtype), forward=forward, mode=problem.mode,
        epochs=problem.epochs, masks=problem.masks)
    # Pytrees sort dict keys (W1, W2, b1, b2); the record keeps the document's order.
    seq = {k: np.concatenate([np.asarray(params[k])[None], np.asarray(seq[k])]) for k in problem.init}
    pred_train = forward(final, x)
    pred_test = forward(final, jnp.asarray(problem.x_test, jdtype)) if problem.x_test.size else ()
    traj = Trajectory(
        case=problem.case, framework="jax", dtype=jdtype.name, hyper=dict(problem.hyper),
        epoch_loss=np.asarray(epoch_loss), step_loss=np.asarray(loss),
        grads={k: np.asarray(grads[k]) for k in problem.init}, params=seq,
        pred_train=np.asarray(pred_train), pred_test=np.asarray(pred_test, jdtype).reshape(-1),
        masks={k: np.asarray(mask[k]) for k in problem.masks})
    if progress is not None:
        progress(problem.steps)
    return traj
