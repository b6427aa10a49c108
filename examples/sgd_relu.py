"""A one-hidden-layer ReLU regression trained by per-sample SGD, with its backward derived
by hand. Its third hidden unit starts with a negative bias and never switches on: the
report names it.

    crosscheck run examples/sgd_relu.py
"""

import numpy as np

from crosscheck import Model

x = np.linspace(-1.0, 1.0, 8).reshape(-1, 1)               # (m, 1)
y = np.abs(x) + 0.1                                       # (m, 1)


def forward(xp, p, x, tap=lambda name, t: t):
    a = tap("a", x @ p["W1"] + p["b1"])                   # (m, h)
    h = xp.where(a > 0, a, 0 * a)                         # ReLU; its derivative at 0 is 0
    return h @ p["W2"] + p["b2"]                          # (m, 1)


def loss(xp, pred, y):
    return xp.mean((pred - y) ** 2)


def backward(p, x, y):
    a = x @ p["W1"] + p["b1"]
    h = np.maximum(a, 0)
    pred = h @ p["W2"] + p["b2"]
    d_pred = 2 * (pred - y) / y.size                      # (m, 1)
    d_h = d_pred @ p["W2"].T                              # (m, h)
    d_a = d_h * (a > 0)                                   # (m, h)
    return {"W1": x.T @ d_a, "b1": d_a.sum(axis=0), "W2": h.T @ d_pred, "b2": d_pred.sum(axis=0)}


model = Model(
    name="sgd_relu",
    x=x, y=y,
    init={"W1": np.array([[1.0, -1.0, 0.5]]), "b1": np.array([0.1, 0.1, -2.0]),
          "W2": np.array([[0.5], [0.5], [0.5]]), "b2": np.array([0.0])},
    forward=forward, loss=loss, backward=backward,
    lr=0.05, epochs=100, batch="sample", relu=("a",),
)
