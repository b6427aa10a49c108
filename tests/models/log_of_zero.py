"""A loss that is not a finite number at the initial values (log(0) = -inf), with a
backward that returns constants: nothing could be compared at any step, so the model is
refused, never passed (the run used to "diverge alike" at step 0 and agree)."""

import numpy as np

from crosscheck import Model

x = np.array([[1.0], [2.0], [3.0]])                       # (m, 1)
y = np.array([[1.0], [1.0], [1.0]])                       # (m, 1)


def forward(xp, p, x):
    return x @ p["w"]                                     # (m, 1): 0 at w = 0


def loss(xp, prob, y):
    return -xp.mean(y * xp.log(prob))                     # log(0): +inf at the start


def backward(p, x, y):
    return {"w": np.array([[0.3]])}                       # constant: wrong everywhere


model = Model(name="log_of_zero", x=x, y=y, init={"w": np.zeros((1, 1))},
              forward=forward, loss=loss, backward=backward, lr=0.1, epochs=5)
