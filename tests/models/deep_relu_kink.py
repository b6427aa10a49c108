"""A correct three-layer ReLU regression that starts with a unit exactly at its kink, and
declares no ``relu=``: finite differences cannot know where its kinks are.

Sample 0 turns every first-layer unit off (x @ W1 + b1 < 0), so its second-layer
pre-activation is b2 exactly, and b2[0] = 0: a ReLU at exactly 0 at step 0. Integer data and
integer-valued parameters keep that 0 exact. Every other pre-activation is at least 0.5 away
from 0. The forward's ReLUs have derivative 0 at 0, as the backward's (z > 0) masks.
"""

import numpy as np

from crosscheck import Model

x = np.array([[-1.0, -1.0], [1.0, 2.0], [2.0, 1.0], [3.0, 1.0]])   # (m, 2)
y = np.array([[1.0], [2.0], [0.0], [3.0]])                         # (m, 1)


def forward(xp, p, x):
    z1 = x @ p["W1"] + p["b1"]                            # (m, 2)
    h1 = xp.where(z1 > 0, z1, 0 * z1)                     # ReLU; its derivative at 0 is 0
    z2 = h1 @ p["W2"] + p["b2"]                           # (m, 2)
    h2 = z2 * (z2 > 0)                                    # ReLU spelled as a mask
    return h2 @ p["W3"] + p["b3"]                         # (m, 1)


def loss(xp, pred, y):
    return xp.mean((pred - y) ** 2)


def backward(p, x, y):
    z1 = x @ p["W1"] + p["b1"]                            # (m, 2)
    h1 = z1 * (z1 > 0)                                    # (m, 2)
    z2 = h1 @ p["W2"] + p["b2"]                           # (m, 2)
    h2 = z2 * (z2 > 0)                                    # (m, 2)
    pred = h2 @ p["W3"] + p["b3"]                         # (m, 1)
    dL_dpred = 2 * (pred - y) / y.size                    # (m, 1)
    dL_dz2 = (dL_dpred @ p["W3"].T) * (z2 > 0)            # (m, 2)
    dL_dz1 = (dL_dz2 @ p["W2"].T) * (z1 > 0)              # (m, 2)
    return {"W1": x.T @ dL_dz1, "b1": dL_dz1.sum(axis=0), "W2": h1.T @ dL_dz2, "b2": dL_dz2.sum(axis=0),
            "W3": h2.T @ dL_dpred, "b3": dL_dpred.sum(axis=0)}


model = Model(
    name="deep_relu_kink",
    x=x, y=y,
    init={"W1": np.eye(2), "b1": np.zeros(2), "W2": np.array([[1.0, -1.0], [1.0, 1.0]]),
          "b2": np.array([0.0, 0.5]), "W3": np.ones((2, 1)), "b3": np.zeros(1)},
    forward=forward, loss=loss, backward=backward,
    lr=0.01, epochs=5,
)
