"""A two-layer sigmoid network on the mean squared error, its backward written layer by
layer with deltas, as many first courses write it. The output delta forgets the output
sigmoid's derivative:

    delta_out = (a2 - y) * 2 / m             (missing: * a2 * (1 - a2))

Every gradient is then wrong, each by a different amount, and no array alone shows a factor
or a sign. Autograd with that one derivative left out at the tapped output pre-activation
gives the manual gradients exactly, and that is how it is named:

    crosscheck run examples/sigmoid_missing_prime.py      # exit 1, named the missing derivative
"""

import numpy as np

from crosscheck import Model

rng = np.random.default_rng(4)
x = rng.normal(size=(12, 2))                                # (m, 2)
y = (x[:, :1] * x[:, 1:] > 0).astype(float)                # (m, 1): same-sign quadrants


def sigmoid(xp, z):
    return 1 / (1 + xp.exp(-z))


def forward(xp, p, x, tap=lambda name, t: t):
    a1 = sigmoid(xp, tap("z1", x @ p["W1"] + p["b1"]))
    return sigmoid(xp, tap("z2", a1 @ p["W2"] + p["b2"]))


def loss(xp, pred, y):
    return xp.mean((pred - y) ** 2)


def backward(p, x, y):
    m = x.shape[0]
    a1 = 1 / (1 + np.exp(-(x @ p["W1"] + p["b1"])))
    a2 = 1 / (1 + np.exp(-(a1 @ p["W2"] + p["b2"])))
    delta_out = (a2 - y) * 2 / m                            # the mistake: * a2 * (1 - a2)
    delta_hidden = (delta_out @ p["W2"].T) * a1 * (1 - a1)
    return {"W1": x.T @ delta_hidden, "b1": delta_hidden.sum(axis=0),
            "W2": a1.T @ delta_out, "b2": delta_out.sum(axis=0)}


model = Model(name="sigmoid_missing_prime", x=x, y=y,
              init={"W1": rng.normal(size=(2, 3)), "b1": np.zeros(3), "W2": rng.normal(size=(3, 1)),
                    "b2": np.zeros(1)},
              forward=forward, loss=loss, backward=backward, lr=0.5, epochs=30)
