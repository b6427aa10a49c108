"""The linear model the bad declarations share: each file changes one thing of it."""

import numpy as np

x = np.arange(8.0).reshape(4, 2) / 8                      # (m, n)
y = np.ones((4, 3))                                       # (m, k)
init = {"W": np.full((2, 3), 0.1), "b": np.zeros((1, 3))}


def forward(xp, p, x):
    return x @ p["W"] + p["b"]                            # (m, k)


def loss(xp, pred, y):
    return xp.mean((pred - y) ** 2)


def dL_dpred(p, x, y):
    return 2 * (x @ p["W"] + p["b"] - y) / y.size         # (m, k)
