"""pred = w**2 x fitted to y = 2x: gradient descent on w is a cubic map, chaotic at lr 0.16.
A shadow perturbed with random signs under-estimated how far a correct JAX run drifts
(its rounding keeps one sign): a false trajectory mismatch at step 19."""

import numpy as np

from crosscheck import Model

x = np.linspace(0.5, 1.5, 6).reshape(-1, 1)
y = 2 * x


def forward(xp, p, x):
    return p["w"] * p["w"] * x


def loss(xp, pred, y):
    return xp.mean((pred - y) ** 2)


def backward(p, x, y):
    d = 2 * (p["w"] * p["w"] * x - y) / y.shape[0]
    return {"w": np.sum(d * x) * 2 * p["w"]}


model = Model(name="chaotic_map", x=x, y=y, init={"w": np.array(0.3)}, forward=forward, loss=loss,
              backward=backward, lr=0.16, epochs=300)
