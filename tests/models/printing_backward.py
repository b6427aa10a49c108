"""A correct model whose file, forward and backward print as a user debugging them does:
``crosscheck run --json -`` must still print nothing but the JSON on stdout."""

import numpy as np

from crosscheck import Model

print("loading my model")
x = np.array([[-1.0], [0.0], [1.0], [2.0]])               # (m, 1)
y = 3 * x - 1                                             # (m, 1)


def forward(xp, p, x):
    print("forward")
    return x @ p["w"]                                     # (m, 1)


def loss(xp, pred, y):
    return xp.mean((pred - y) ** 2)


def backward(p, x, y):
    print("debug: backward at w =", p["w"].ravel())
    return {"w": x.T @ (2 * (x @ p["w"] - y) / y.size)}


model = Model(name="printing_backward", x=x, y=y, init={"w": np.zeros((1, 1))},
              forward=forward, loss=loss, backward=backward, lr=0.1, epochs=3)
