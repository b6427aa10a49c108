"""A ReLU spelled two ways: the forward uses xp.maximum (derivative 1/2 at exactly 0 in
torch and JAX), the hand-written backward (a > 0) (derivative 0). They differ only where a
pre-activation is exactly 0, which this start makes happen: a = x - 1 at x = 1.

    crosscheck run examples/kink_spelling.py      # exit 1, the mistake named a kink
"""

import numpy as np

from crosscheck import Model

x = np.array([[0.0], [1.0], [2.0], [3.0]])               # (m, 1)
y = 2 * x + 1                                             # (m, 1)


def forward(xp, p, x, tap=lambda name, t: t):
    a = tap("a", x @ p["W1"] + p["b1"])                   # (m, 1)
    return xp.maximum(a, 0 * a) @ p["W2"] + p["b2"]       # the kink's derivative: 1/2 here


def loss(xp, pred, y):
    return xp.mean((pred - y) ** 2)


def backward(p, x, y):
    a = x @ p["W1"] + p["b1"]
    A = np.maximum(a, 0)
    d = 2 * (A @ p["W2"] + p["b2"] - y) / y.size
    da = (d @ p["W2"].T) * (a > 0)                        # ... and 0 here
    return {"W1": x.T @ da, "b1": da.sum(axis=0), "W2": A.T @ d, "b2": d.sum(axis=0)}


model = Model(name="kink_spelling", x=x, y=y,
              init={"W1": np.array([[1.0]]), "b1": np.array([-1.0]), "W2": np.array([[1.0]]),
                    "b2": np.array([0.0])},
              forward=forward, loss=loss, backward=backward, lr=0.05, epochs=20, relu=("a",))
