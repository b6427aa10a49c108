"""A forward that branches with a Python ``if`` on a value it computes: NumPy and torch run
it, JAX cannot trace it. The one line says what JAX said, where, and what to write."""

import numpy as np

from crosscheck import Model

x = np.array([[1.0], [2.0]])                              # (m, 1)
y = np.array([[1.0], [3.0]])                              # (m, 1)


def forward(xp, p, x):
    z = x @ p["w"]                                        # (m, 1)
    if xp.sum(z) > 0:                                     # a Python if on a traced value
        return z
    return -z


def loss(xp, pred, y):
    return xp.mean((pred - y) ** 2)


def backward(p, x, y):
    z = x @ p["w"]
    sign = 1.0 if np.sum(z) > 0 else -1.0
    return {"w": sign * x.T @ (2 * (sign * z - y) / y.size)}


model = Model(name="python_if_on_traced", x=x, y=y, init={"w": np.ones((1, 1))},
              forward=forward, loss=loss, backward=backward, lr=0.1, epochs=3)
