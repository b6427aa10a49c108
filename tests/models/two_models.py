"""Two correct models in one file: ``run two_models.py`` checks both, ``two_models.py:second``
(the variable) or ``two_models.py:two_second`` (the model's name) only the second."""

import numpy as np

from crosscheck import Model

x = np.array([[0.0], [1.0], [2.0], [3.0]])                # (m, 1)
y = 2 * x + 1                                             # (m, 1)


def forward(xp, p, x):
    return x @ p["w"] + p["b"]                            # (m, 1)


def loss(xp, pred, y):
    return xp.mean((pred - y) ** 2)


def backward(p, x, y):
    dL_dpred = 2 * (x @ p["w"] + p["b"] - y) / y.size     # (m, 1)
    return {"w": x.T @ dL_dpred, "b": dL_dpred.sum(axis=0)}


first = Model(name="two_first", x=x, y=y, init={"w": np.zeros((1, 1)), "b": np.zeros(1)},
              forward=forward, loss=loss, backward=backward, lr=0.05, epochs=20)
second = Model(name="two_second", x=x, y=y, init={"w": np.ones((1, 1)), "b": np.zeros(1)},
               forward=forward, loss=loss, backward=backward, lr=0.02, epochs=10, batch="sample")
