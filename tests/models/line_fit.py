"""A correct straight-line fit whose parameters are single numbers (w is (1, 1), b is (1,)):
the smallest model a user could check."""

import numpy as np

from crosscheck import Model

x = np.array([[-1.0], [0.0], [1.0], [2.0]])               # (m, 1)
y = 3 * x - 1                                             # (m, 1)


def forward(xp, p, x):
    return x @ p["w"] + p["b"]                            # (m, 1)


def loss(xp, pred, y):
    return xp.mean((pred - y) ** 2)


def backward(p, x, y):
    dL_dpred = 2 * (x @ p["w"] + p["b"] - y) / y.size     # (m, 1)
    return {"w": x.T @ dL_dpred, "b": dL_dpred.sum(axis=0)}


model = Model(
    name="line_fit",
    x=x, y=y,
    init={"w": np.zeros((1, 1)), "b": np.zeros(1)},
    forward=forward, loss=loss, backward=backward,
    lr=0.1, epochs=25,
)
