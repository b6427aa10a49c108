"""A ReLU net trained on shuffled mini-batches of 4 whose second unit starts far below its
kink (b1 = -9): it never learns. Its masks are kept per step; the dead-unit diagnosis maps a
batch row back to the sample it was (tests/test_loop.py)."""

import numpy as np

from crosscheck import Model

rng = np.random.default_rng(2)
X = rng.normal(size=(10, 2))
Y = rng.normal(size=(10, 1))


def forward(xp, p, x, tap):
    z = tap("z", x @ p["W1"] + p["b1"])
    return xp.maximum(z, 0 * z) @ p["W2"]


def loss(xp, o, y):
    return xp.mean((o - y) ** 2)


def backward(p, x, y):
    z = x @ p["W1"] + p["b1"]
    h = np.maximum(z, 0)
    d = 2 * (h @ p["W2"] - y) / len(x)
    dz = (d @ p["W2"].T) * (z > 0)
    return {"W1": x.T @ dz, "b1": dz.sum(0), "W2": h.T @ d}


init = {"W1": rng.normal(size=(2, 3)), "b1": np.array([0.1, -9.0, 0.1]), "W2": rng.normal(size=(3, 1))}
model = Model("relu_minibatch", X, Y, init, forward, loss, backward, lr=0.05, epochs=6, batch=4, shuffle=1,
              relu=("z",))
