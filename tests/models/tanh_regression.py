"""A correct two-layer tanh regression for the meta-tests, which plant one wrong gradient
line in a copy of ``backward``.

Its first layer is not square (W1 is (3, 4)), so a transposed product there cannot hide
behind a symmetric shape; and the batch has as many samples as hidden units (m = h = 4),
so a bias gradient summed over the wrong axis keeps its shape, (4,), and reaches the
values instead of the shape check.
"""

import numpy as np

from crosscheck import Model

rng = np.random.default_rng(3)
x = rng.normal(size=(4, 3))                               # (m, n)
y = np.stack([x[:, 0] - x[:, 1], np.tanh(x[:, 2])], axis=1)   # (m, k)


def forward(xp, p, x):
    h = xp.tanh(x @ p["W1"] + p["b1"])                    # (m, h)
    return h @ p["W2"] + p["b2"]                          # (m, k)


def loss(xp, pred, y):
    return xp.mean((pred - y) ** 2)


def backward(p, x, y):
    z1 = x @ p["W1"] + p["b1"]                            # (m, h)
    h = np.tanh(z1)                                       # (m, h)
    pred = h @ p["W2"] + p["b2"]                          # (m, k)
    dL_dpred = 2 * (pred - y) / y.size                    # (m, k)
    dL_dW2 = h.T @ dL_dpred                               # (h, k)
    dL_db2 = dL_dpred.sum(axis=0)                         # (k,)
    dL_dh = dL_dpred @ p["W2"].T                          # (m, h)
    dL_dz1 = dL_dh * (1 - h ** 2)                         # (m, h)
    dL_dW1 = x.T @ dL_dz1                                 # (n, h)
    dL_db1 = dL_dz1.sum(axis=0)                           # (h,)
    return {"W1": dL_dW1, "b1": dL_db1, "W2": dL_dW2, "b2": dL_db2}


model = Model(
    name="tanh_regression",
    x=x, y=y,
    init={"W1": 0.5 * rng.normal(size=(3, 4)), "b1": 0.1 * rng.normal(size=4),
          "W2": 0.5 * rng.normal(size=(4, 2)), "b2": np.zeros(2)},
    forward=forward, loss=loss, backward=backward,
    lr=0.1, epochs=20,
)
