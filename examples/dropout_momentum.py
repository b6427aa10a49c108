"""A three-layer ReLU network for binary classification with inverted dropout after both
hidden layers, trained full-batch by a hand-written SGD with momentum: the shape of the
regularisation exercise of a first deep-learning course (masks ``D1``, ``D2`` kept with
probability ``KEEP`` and scaled by ``1 / KEEP``), with PyTorch's momentum convention.

The masks are drawn by ``noise``, a fresh pair for every step, and handed to both the
forward and the backward, so autograd differentiates the very network the backward does.
It checks that each mask is applied on the way back as on the way forward, the sigmoid
cross-entropy's gradient (the loss computed from the scores, stably), and the momentum update
(``buf = MOMENTUM * buf + g; p -= LR * buf``) against ``torch.optim.SGD(momentum=0.9)``.

    crosscheck run examples/dropout_momentum.py
"""

import numpy as np

from crosscheck import Model
from crosscheck.optim import SGD

rng = np.random.default_rng(21)
x = rng.normal(size=(32, 3))                              # (m, n)
y = ((x[:, :1] * x[:, 1:2] + 0.5 * x[:, 2:]) > 0).astype(float)   # (m, 1) in {0, 1}

LR = 0.05
MOMENTUM = 0.9
KEEP = 0.8
H1, H2 = 8, 6


def noise(rng, x):
    m = x.shape[0]
    return {"D1": (rng.random((m, H1)) < KEEP) / KEEP,    # inverted dropout: kept units scaled up
            "D2": (rng.random((m, H2)) < KEEP) / KEEP}


def forward(xp, p, x, *, noise):
    z1 = x @ p["W1"] + p["b1"]                            # (m, h1)
    a1 = xp.where(z1 > 0, z1, 0 * z1) * noise["D1"]
    z2 = a1 @ p["W2"] + p["b2"]                           # (m, h2)
    a2 = xp.where(z2 > 0, z2, 0 * z2) * noise["D2"]
    return a2 @ p["W3"] + p["b3"]                         # (m, 1) scores (logits)


def loss(xp, z, y):
    # mean of -y log(sigmoid z) - (1 - y) log(1 - sigmoid z) = log(1 + e^z) - y z, stably
    return xp.mean(xp.logaddexp(0 * z, z) - y * z)


def backward(p, x, y, *, noise):
    m = x.shape[0]
    z1 = x @ p["W1"] + p["b1"]
    a1 = np.maximum(z1, 0) * noise["D1"]
    z2 = a1 @ p["W2"] + p["b2"]
    a2 = np.maximum(z2, 0) * noise["D2"]
    z3 = a2 @ p["W3"] + p["b3"]
    d_z3 = (1 / (1 + np.exp(-z3)) - y) / m                # (m, 1)
    d_a2 = d_z3 @ p["W3"].T * noise["D2"]                 # the mask again, scale included
    d_z2 = d_a2 * (z2 > 0)
    d_a1 = d_z2 @ p["W2"].T * noise["D1"]
    d_z1 = d_a1 * (z1 > 0)
    return {"W1": x.T @ d_z1, "b1": d_z1.sum(axis=0), "W2": a1.T @ d_z2, "b2": d_z2.sum(axis=0),
            "W3": a2.T @ d_z3, "b3": d_z3.sum(axis=0)}


def update(params, grads, state):
    """SGD with momentum as torch.optim.SGD has it; ``state`` starts empty."""
    if not state:
        state["buf"] = {k: np.zeros_like(v) for k, v in params.items()}
    new = {}
    for k, g in grads.items():
        state["buf"][k] = MOMENTUM * state["buf"][k] + g
        new[k] = params[k] - LR * state["buf"][k]
    return new, state


model = Model(
    name="dropout_momentum",
    x=x, y=y,
    init={"W1": rng.normal(size=(3, H1)) * np.sqrt(2 / 3), "b1": np.full(H1, 0.1),   # He, and biases
          "W2": rng.normal(size=(H1, H2)) * np.sqrt(2 / H1), "b2": np.full(H2, 0.1),  # a little on
          "W3": rng.normal(size=(H2, 1)) * np.sqrt(1 / H2), "b3": np.zeros(1)},
    forward=forward, loss=loss, backward=backward, noise=noise,
    update=update, optimizer=SGD(momentum=MOMENTUM),
    lr=LR, epochs=150, batch="full",
)
