"""A ReLU spelled xp.clip(z, min=0), with a pre-activation exactly 0 at the start: there
torch's and JAX's autograds take different derivatives (conventions of their own), so
neither can judge the manual gradient, and the check must say so, not 'not finite'."""

import numpy as np

from crosscheck import Model

x = np.array([[-1.0], [1.0], [2.0]])                      # (m, 1)
y = np.array([[1.0], [2.0], [0.0]])                       # (m, 1)


def forward(xp, p, x):
    return xp.clip(x @ p["w"] + p["b"], min=0.0)          # (m, 1): sample 0 exactly at 0


def loss(xp, pred, y):
    return xp.mean((pred - y) ** 2)


def backward(p, x, y):
    z = x @ p["w"] + p["b"]
    dL_dz = 2 * (z * (z > 0) - y) / y.size * (z > 0)
    return {"w": x.T @ dL_dz, "b": dL_dz.sum(axis=0)}


model = Model(name="clip_at_zero", x=x, y=y, init={"w": np.array([[1.0]]), "b": np.array([1.0])},
              forward=forward, loss=loss, backward=backward, lr=0.01, epochs=3)
