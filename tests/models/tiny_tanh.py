"""A correct tiny model for the tests: one tanh hidden layer, mean squared error, full batch.
Small enough to run in well under a second in every framework."""

import numpy as np

from crosscheck import Model

rng = np.random.default_rng(7)
x = rng.normal(size=(5, 2))                               # (m, n)
y = np.sin(x[:, :1]) + 0.5 * x[:, 1:]                     # (m, 1)


def forward(xp, p, x):
    h = xp.tanh(x @ p["W1"] + p["b1"])                    # (m, h)
    return h @ p["W2"] + p["b2"]                          # (m, 1)


def loss(xp, pred, y):
    return xp.mean((pred - y) ** 2)


def backward(p, x, y):
    h = np.tanh(x @ p["W1"] + p["b1"])                    # (m, h)
    pred = h @ p["W2"] + p["b2"]                          # (m, 1)
    dL_dpred = 2 * (pred - y) / y.size                    # (m, 1)
    dL_dh = dL_dpred @ p["W2"].T                          # (m, h)
    dL_dz = dL_dh * (1 - h ** 2)                          # (m, h)
    return {"W1": x.T @ dL_dz, "b1": dL_dz.sum(axis=0), "W2": h.T @ dL_dpred, "b2": dL_dpred.sum(axis=0)}


model = Model(
    name="tiny_tanh",
    x=x, y=y,
    init={"W1": 0.5 * rng.normal(size=(2, 3)), "b1": np.zeros(3),
          "W2": 0.5 * rng.normal(size=(3, 1)), "b2": np.zeros(1)},
    forward=forward, loss=loss, backward=backward,
    lr=0.1, epochs=30,
)
