"""A one-unit ReLU net trained per sample whose backward lacks the ReLU's mask: right on
sample 0, where the unit is on at the start, wrong on the others, where it is off."""

import numpy as np

from crosscheck import Model

x = np.array([[3.0], [-1.0], [-2.0]])                     # (m, 1)
y = np.array([[1.0], [0.5], [2.0]])                       # (m, 1)


def forward(xp, p, x):
    a = x @ p["W1"] + p["b1"]                             # (m, 1)
    return xp.where(a > 0, a, 0 * a) @ p["W2"]            # (m, 1)


def loss(xp, pred, y):
    return xp.mean((pred - y) ** 2)


def backward(p, x, y):
    a = x @ p["W1"] + p["b1"]
    h = a * (a > 0)
    dL_dpred = 2 * (h @ p["W2"] - y) / y.size
    dL_da = dL_dpred @ p["W2"].T                          # the mistake: * (a > 0) is missing
    return {"W1": x.T @ dL_da, "b1": dL_da.sum(axis=0), "W2": h.T @ dL_dpred}


model = Model(name="per_sample_missing_mask", x=x, y=y,
              init={"W1": np.array([[1.0]]), "b1": np.array([0.1]), "W2": np.array([[1.0]])},
              forward=forward, loss=loss, backward=backward, batch="sample")
