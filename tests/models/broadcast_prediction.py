"""NumPy's classic trap: the forward returns (m,) while y is (m, 1), so ``pred - y`` in the
loss is (m, m), every prediction against every target. The backward is right for the
loss the user meant; the model is refused naming both shapes, instead of its correct
backward being blamed."""

import numpy as np

from crosscheck import Model

x = np.arange(16.0).reshape(8, 2) / 8                     # (m, n)
y = x @ np.array([[1.0], [2.0]])                          # (m, 1)


def forward(xp, p, x):
    return x @ p["w"]                                     # (m,): w is (n,)


def loss(xp, pred, y):
    return xp.mean((pred - y) ** 2)                       # (m,) - (m, 1) is (m, m)


def backward(p, x, y):
    dL_dpred = 2 * (x @ p["w"] - y[:, 0]) / x.shape[0]    # (m,): the loss as meant
    return {"w": x.T @ dL_dpred}


model = Model(name="broadcast_prediction", x=x, y=y, init={"w": np.zeros(2)},
              forward=forward, loss=loss, backward=backward, lr=0.1, epochs=5)
