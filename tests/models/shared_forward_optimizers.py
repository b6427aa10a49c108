"""Three correct models in one file that share their forward and loss and differ only in
their loop (momentum, Adam, Adam on batches of 3): each must get its own framework runs
(tests/test_loop.py). A run is reused only where the loop is the same too; it once was
reused across optimizers, and the second model was called wrong at step 0."""

import numpy as np

from crosscheck import Model
from crosscheck.optim import SGD, Adam

rng = np.random.default_rng(0)
X = rng.normal(size=(8, 2))
Y = rng.normal(size=(8, 1))


def forward(xp, p, x, tap=None):
    return x @ p["w"]


def loss(xp, out, y):
    return xp.mean((out - y) ** 2)


def backward(p, x, y):
    return {"w": x.T @ (2 * (x @ p["w"] - y) / len(x))}


init = {"w": np.zeros((2, 1))}
momentum = Model("shared_momentum", X, Y, init, forward, loss, backward, lr=0.1, epochs=3,
                 optimizer=SGD(momentum=0.9))
adam = Model("shared_adam", X, Y, init, forward, loss, backward, lr=0.1, epochs=3, optimizer=Adam())
batched = Model("shared_adam_batched", X, Y, init, forward, loss, backward, lr=0.1, epochs=3, batch=3,
                optimizer=Adam())
