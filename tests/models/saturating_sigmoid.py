"""A correct 3-layer sigmoid network whose units saturate: at lr 7 (``fast``) the manual
``h * (1 - h)`` cancels and its float64 rounding exceeds one step's bound (confirmed in
extended precision); at lr 8 (``diverging``) torch's and JAX's autograd part from each
other before the run overflows. ``wrong`` has a 1e-9 relative error in one gradient."""

import numpy as np

from crosscheck import Model

rng = np.random.default_rng(11)
x = rng.normal(size=(20, 3))
y = np.stack([np.sin(x[:, 0]) + x[:, 1] * x[:, 2], np.cos(x[:, 1])], axis=1)
init = {"W1": rng.normal(size=(3, 5)), "b1": np.zeros(5), "W2": rng.normal(size=(5, 4)),
        "b2": np.zeros(4), "W3": rng.normal(size=(4, 2)), "b3": np.zeros(2)}


def sigmoid(xp, z):
    return 1 / (1 + xp.exp(-z))


def forward(xp, p, x):
    h1 = sigmoid(xp, x @ p["W1"] + p["b1"])
    h2 = sigmoid(xp, h1 @ p["W2"] + p["b2"])
    return h2 @ p["W3"] + p["b3"]


def loss(xp, pred, y):
    return xp.mean((pred - y) ** 2)


def backward(p, x, y):
    h1 = sigmoid(np, x @ p["W1"] + p["b1"])
    h2 = sigmoid(np, h1 @ p["W2"] + p["b2"])
    d = 2 * (h2 @ p["W3"] + p["b3"] - y) / y.size
    dz2 = (d @ p["W3"].T) * h2 * (1 - h2)
    dz1 = (dz2 @ p["W2"].T) * h1 * (1 - h1)
    return {"W1": x.T @ dz1, "b1": dz1.sum(0), "W2": h1.T @ dz2, "b2": dz2.sum(0),
            "W3": h2.T @ d, "b3": d.sum(0)}


def backward_wrong(p, x, y):
    grads = backward(p, x, y)
    return {**grads, "W2": grads["W2"] * (1 + 1e-9)}


fast = Model(name="sigmoid_fast", x=x, y=y, init=init, forward=forward, loss=loss, backward=backward,
             lr=7.0, epochs=150)
diverging = Model(name="sigmoid_diverging", x=x, y=y, init=init, forward=forward, loss=loss,
                  backward=backward, lr=8.0, epochs=200)
wrong = Model(name="sigmoid_wrong", x=x, y=y, init=init, forward=forward, loss=loss,
              backward=backward_wrong, lr=8.0, epochs=200)
