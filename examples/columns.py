"""A two-layer tanh network with a softmax output written in the column layout of the
deeplearning.ai courses: samples are columns, ``X`` is (n_x, m), ``W1`` is (n_h, n_x),
``b1`` is (n_h, 1), ``Z = W @ A + b``, and the class scores are (n_y, m), normalised along
axis 0. The labels are integer classes, one per sample, shape (m,). Trained full-batch by
plain gradient descent.

It checks a backward written in that layout, where every product and sum runs the other
way round from the row layout (``dW = dZ @ A_prev.T / m``, ``db`` summed over axis 1 with
its column shape kept), and the declaration of it: ``sample_axis=1``.

    crosscheck run examples/columns.py
"""

import numpy as np

from crosscheck import Model

rng = np.random.default_rng(8)
X = rng.normal(size=(2, 40))                              # (n_x, m): one sample per column
Y = (X[0] > 0).astype(int) + (X[1] > 0.5).astype(int)     # (m,): classes 0, 1, 2
n_x, n_h, n_y = 2, 5, 3


def forward(xp, p, X):
    A1 = xp.tanh(p["W1"] @ X + p["b1"])                   # (n_h, m)
    return p["W2"] @ A1 + p["b2"]                         # (n_y, m) class scores


def loss(xp, Z2, Y):
    shifted = Z2 - xp.max(Z2, axis=0, keepdims=True)
    log_probs = shifted - xp.log(xp.sum(xp.exp(shifted), axis=0, keepdims=True))   # (n_y, m)
    one_hot = xp.astype(xp.arange(Z2.shape[0])[:, None] == Y[None, :], Z2.dtype)     # (n_y, m)
    return -xp.mean(xp.sum(one_hot * log_probs, axis=0))


def backward(p, X, Y):
    m = X.shape[1]
    A1 = np.tanh(p["W1"] @ X + p["b1"])                   # (n_h, m)
    Z2 = p["W2"] @ A1 + p["b2"]                           # (n_y, m)
    E = np.exp(Z2 - Z2.max(axis=0, keepdims=True))
    A2 = E / E.sum(axis=0, keepdims=True)                 # softmax of each column
    dZ2 = A2 - np.eye(n_y)[:, Y]                          # (n_y, m): minus each column's one-hot
    dW2 = dZ2 @ A1.T / m
    db2 = dZ2.sum(axis=1, keepdims=True) / m              # (n_y, 1)
    dZ1 = (p["W2"].T @ dZ2) * (1 - A1 ** 2)               # (n_h, m)
    dW1 = dZ1 @ X.T / m
    db1 = dZ1.sum(axis=1, keepdims=True) / m              # (n_h, 1)
    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}


model = Model(
    name="columns",
    x=X, y=Y, sample_axis=1,
    init={"W1": 0.5 * rng.normal(size=(n_h, n_x)), "b1": np.zeros((n_h, 1)),
          "W2": 0.5 * rng.normal(size=(n_y, n_h)), "b2": np.zeros((n_y, 1))},
    forward=forward, loss=loss, backward=backward,
    lr=0.5, epochs=150, batch="full",
)
