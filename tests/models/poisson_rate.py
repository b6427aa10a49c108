"""A correct Poisson regression: its loss takes the log of the predicted rate, so it is a
number only where every rate w * x is positive; random points around the start can fall
outside."""

import numpy as np

from crosscheck import Model

x = np.array([[1.0], [2.0], [3.0]])                       # (m, 1)
y = np.array([[1.0], [2.0], [1.0]])                       # (m, 1) counts


def forward(xp, p, x):
    return x @ p["w"]                                     # (m, 1) rates


def loss(xp, rate, y):
    return xp.mean(rate - y * xp.log(rate))               # negative log-likelihood, up to a constant


def backward(p, x, y):
    rate = x @ p["w"]
    return {"w": x.T @ ((1 - y / rate) / y.size)}


model = Model(name="poisson_rate", x=x, y=y, init={"w": np.array([[1.0]])},
              forward=forward, loss=loss, backward=backward)
