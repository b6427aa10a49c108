"""A one-hidden-layer ReLU regression whose second hidden unit is dead from the start
(x @ W1 + b1 < 0 on every sample), with the ReLU's mask missing in the backward. Autograd's
gradients of that unit's W1 and b1 are exactly 0; the manual ones are not.
"""

import numpy as np

from crosscheck import Model

x = np.array([[-1.0], [0.5], [1.0], [2.0]])               # (m, 1)
y = np.array([[1.0], [0.0], [2.0], [1.0]])                # (m, 1)


def forward(xp, p, x, tap=lambda name, t: t):
    a = tap("a", x @ p["W1"] + p["b1"])                   # (m, h)
    return xp.where(a > 0, a, 0 * a) @ p["W2"] + p["b2"]  # (m, 1)


def loss(xp, pred, y):
    return xp.mean((pred - y) ** 2)


def backward(p, x, y):
    a = x @ p["W1"] + p["b1"]                             # (m, h)
    h = np.maximum(a, 0)                                  # (m, h)
    dL_dpred = 2 * (h @ p["W2"] + p["b2"] - y) / y.size   # (m, 1)
    dL_da = dL_dpred @ p["W2"].T                          # the mistake: (a > 0) missing
    return {"W1": x.T @ dL_da, "b1": dL_da.sum(axis=0), "W2": h.T @ dL_dpred, "b2": dL_dpred.sum(axis=0)}


model = Model(
    name="dead_unit_no_mask",
    x=x, y=y,
    init={"W1": np.array([[1.0, 1.0]]), "b1": np.array([2.0, -5.0]), "W2": np.array([[1.0], [1.0]]),
          "b2": np.array([0.0])},
    forward=forward, loss=loss, backward=backward,
    lr=0.01, epochs=3, relu=("a",),
)
