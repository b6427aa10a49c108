"""The loss forgets to reduce over the samples: one value per sample."""

import numpy as np

from crosscheck import Model

x = np.arange(8.0).reshape(4, 2) / 8                      # (m, n)
y = np.ones((4, 3))                                       # (m, k)


def forward(xp, p, x):
    return x @ p["W"] + p["b"]                            # (m, k)


def loss(xp, pred, y):
    return xp.mean((pred - y) ** 2, axis=1)                # (m,): not a scalar


def backward(p, x, y):
    dL_dpred = 2 * (x @ p["W"] + p["b"] - y) / y.size     # (m, k)
    return {"W": x.T @ dL_dpred, "b": dL_dpred.sum(axis=0, keepdims=True)}


model = Model(name="nonscalar_loss", x=x, y=y, init={"W": np.full((2, 3), 0.1), "b": np.zeros((1, 3))},
              forward=forward, loss=loss, backward=backward, lr=0.1, epochs=5)
