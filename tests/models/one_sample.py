"""A per-sample model with a single sample: every epoch is one step, and still a sample's."""

import numpy as np

from crosscheck import Model

x = np.array([[0.5, -1.0]])                               # (1, n)
y = np.array([[2.0]])                                     # (1, 1)


def forward(xp, p, x):
    return xp.tanh(x @ p["W"]) + p["b"]                   # (1, 1)


def loss(xp, pred, y):
    return xp.sum((pred - y) ** 2)


def backward(p, x, y):
    h = np.tanh(x @ p["W"])
    d = 2 * (h + p["b"] - y)                              # (1, 1)
    return {"W": x.T @ (d * (1 - h ** 2)), "b": d.sum(axis=0)}


model = Model(name="one_sample", x=x, y=y, init={"W": np.array([[0.1], [0.2]]), "b": np.zeros(1)},
              forward=forward, loss=loss, backward=backward, lr=0.1, epochs=20, batch="sample")
