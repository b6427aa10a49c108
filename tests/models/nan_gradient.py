"""A backward whose bias gradient is NaN from the first step (0 * inf in a hand-written
normalisation): a wrong manual gradient, caught at step 0 on ``b`` like any other."""

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
    with np.errstate(all="ignore"):
        scale = np.inf * 0.0                              # the mistake: NaN
    return {"w": x.T @ dL_dpred, "b": dL_dpred.sum(axis=0) * scale}


model = Model(name="nan_gradient", x=x, y=y, init={"w": np.zeros((1, 1)), "b": np.zeros(1)},
              forward=forward, loss=loss, backward=backward, lr=0.1, epochs=5)
