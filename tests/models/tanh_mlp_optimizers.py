"""A correct tanh MLP in mini-batches of 4 (13 samples), with two optimizers at learning
rates where a correct model was once called wrong (tests/test_loop.py):

* ``momentum_lr1``: a hand-written momentum at lr 1. The run diverges and a tanh unit
  saturates: NumPy's and the frameworks' tanh differ by an ulp there, which ``1 - h**2``
  makes a 1e-5 relative difference of that unit's gradients (the local question's own
  rounding probe), and the trajectories' gradients at a step differ by as much;
* ``adamw_lr10``: AdamW at lr 10, run by torch.optim for the reference and by optax in JAX,
  whose steps round differently and whose normalised step ignores a nudge of the parameters
  (the envelope's shadow moves the gradients and each step by their own rounding).
"""

import numpy as np

from crosscheck import Model
from crosscheck.optim import SGD, AdamW

rng = np.random.default_rng(3)
x = rng.normal(size=(13, 3))
y = np.tanh(x @ np.array([[1.0], [-0.5], [0.3]])) + 0.1 * rng.normal(size=(13, 1))
init = {"W1": 0.5 * rng.normal(size=(3, 4)), "b1": np.zeros(4), "W2": 0.5 * rng.normal(size=(4, 1)),
        "b2": np.zeros(1)}


def forward(xp, p, x):
    return xp.tanh(x @ p["W1"] + p["b1"]) @ p["W2"] + p["b2"]


def loss(xp, pred, y):
    return xp.mean((pred - y) ** 2)


def backward(p, x, y):
    h = np.tanh(x @ p["W1"] + p["b1"])
    d = 2 * (h @ p["W2"] + p["b2"] - y) / len(x)
    dh = d @ p["W2"].T * (1 - h ** 2)
    return {"W1": x.T @ dh, "b1": dh.sum(0), "W2": h.T @ d, "b2": d.sum(0)}


def momentum(p, g, state):
    new = {}
    for k in p:
        state[k] = g[k].copy() if k not in state else 0.9 * state[k] + g[k]
        new[k] = p[k] - 1.0 * state[k]
    return new, state


momentum_lr1 = Model("momentum_lr1", x, y, init, forward, loss, backward, lr=1.0, epochs=20, batch=4,
                     optimizer=SGD(momentum=0.9), update=momentum)
adamw_lr10 = Model("adamw_lr10", x, y, init, forward, loss, backward, lr=10.0, epochs=20, batch=4,
                   optimizer=AdamW(weight_decay=0.01))
