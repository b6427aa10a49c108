"""A correct backward at a start where the gradient itself is infinite (d sqrt(w)/dw at
w = 0): every implementation leaves the finite numbers at step 0, so no gradient is ever
compared, and the check must not say agree."""

import numpy as np

from crosscheck import Model

x = np.array([[1.0], [2.0]])                              # (m, 1)
y = np.array([[1.0], [3.0]])                              # (m, 1)


def forward(xp, p, x):
    return x * xp.sqrt(p["w"])                            # (m, 1)


def loss(xp, pred, y):
    return xp.mean((pred - y) ** 2)


def backward(p, x, y):
    dL_dpred = 2 * (x * np.sqrt(p["w"]) - y) / y.size     # (m, 1)
    with np.errstate(divide="ignore"):
        return {"w": np.reshape(np.sum(dL_dpred * x) * 0.5 / np.sqrt(p["w"]), (1, 1))}


model = Model(name="sqrt_at_zero", x=x, y=y, init={"w": np.zeros((1, 1))},
              forward=forward, loss=loss, backward=backward, lr=0.1, epochs=3)
