"""Logistic regression with a classic hand-derived mistake, to show what a failure looks
like: the loss is a *mean* over samples, but the bias gradient is a *sum*, so it is m
times too large. Everything else is right.

    crosscheck run examples/planted_mistake.py      # exit code 1, MISMATCH on grad[b] at step 0
"""

import numpy as np

from crosscheck import Model

rng = np.random.default_rng(1)
x = rng.normal(size=(16, 3))                              # (m, n)
y = (x @ np.array([[1.0], [-2.0], [0.5]]) > 0).astype(float)   # (m, 1)


def forward(xp, p, x):
    return 1 / (1 + xp.exp(-(x @ p["w"] + p["b"])))       # (m, 1) probabilities


def loss(xp, prob, y):
    return -xp.mean(y * xp.log(prob) + (1 - y) * xp.log(1 - prob))


def backward(p, x, y):
    prob = 1 / (1 + np.exp(-(x @ p["w"] + p["b"])))
    dL_dz = (prob - y) / x.shape[0]                       # (m, 1)
    dL_dw = x.T @ dL_dz                                   # (n, 1)
    dL_db = np.sum(dL_dz) * x.shape[0]                    # the mistake: the mean's 1/m undone
    return {"w": dL_dw, "b": np.reshape(dL_db, (1,))}


model = Model(
    name="planted_mistake",
    x=x, y=y,
    init={"w": np.zeros((3, 1)), "b": np.array([0.5])},
    forward=forward, loss=loss, backward=backward,
    lr=0.5, epochs=50,
)
