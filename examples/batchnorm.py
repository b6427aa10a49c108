"""A regression MLP with a batch-norm layer between its first linear layer and its ReLU,
trained on mini-batches by plain SGD: the shape of the batch-norm exercise of a first
deep-learning course, with the layer's running mean and variance kept as PyTorch's
``BatchNorm1d`` keeps them (momentum 0.1, the running variance unbiased).

In training the layer normalises with the batch's own mean and (biased) variance, so the
gradient flows through both statistics: that is what the backward gets wrong most often,
and what this checks, on batches of 8 and on the epoch's last, smaller one (6). The
running statistics are state, not parameters: the forward returns them updated, and they
are compared step by step without being differentiated.

    crosscheck run examples/batchnorm.py
"""

import numpy as np

from crosscheck import Model

rng = np.random.default_rng(4)
x = rng.normal(size=(30, 3)) * np.array([1.0, 3.0, 0.3]) + np.array([0.0, 2.0, -1.0])  # (m, n)
y = np.sin(x[:, :1]) + 0.3 * x[:, 1:2] - x[:, 2:]        # (m, 1)

EPS = 1e-5                                                # inside the square root, as in torch
MOMENTUM = 0.1                                            # running = (1 - 0.1) running + 0.1 batch
H = 6


def forward(xp, p, x, *, state):
    m = x.shape[0]
    z = x @ p["W1"]                                       # (m, h); no bias: beta takes its place
    mu = xp.mean(z, axis=0)                               # (h,)
    var = xp.mean((z - mu) ** 2, axis=0)                  # (h,) biased, to normalise with
    z_hat = (z - mu) / xp.sqrt(var + EPS)
    s = z_hat * p["gamma"] + p["beta"]                    # (m, h) scaled and shifted
    a = xp.where(s > 0, s, 0 * s)                         # ReLU
    new_state = {"mean": (1 - MOMENTUM) * state["mean"] + MOMENTUM * mu,
                 "var": (1 - MOMENTUM) * state["var"] + MOMENTUM * var * m / (m - 1)}   # unbiased
    return a @ p["W2"] + p["b2"], new_state               # (m, 1)


def loss(xp, pred, y):
    return xp.mean((pred - y) ** 2)


def backward(p, x, y, *, state):                          # state: the running statistics, unused here
    m = x.shape[0]
    z = x @ p["W1"]
    mu = z.mean(axis=0)
    var = ((z - mu) ** 2).mean(axis=0)
    inv_std = 1 / np.sqrt(var + EPS)
    z_hat = (z - mu) * inv_std
    s = z_hat * p["gamma"] + p["beta"]
    a = np.maximum(s, 0)
    pred = a @ p["W2"] + p["b2"]
    d_pred = 2 * (pred - y) / y.size                      # (m, 1)
    d_s = d_pred @ p["W2"].T * (s > 0)                    # (m, h)
    d_z_hat = d_s * p["gamma"]
    # through the normalisation, the batch mean and variance included
    d_z = inv_std / m * (m * d_z_hat - d_z_hat.sum(axis=0) - z_hat * (d_z_hat * z_hat).sum(axis=0))
    return {"W1": x.T @ d_z, "gamma": (d_s * z_hat).sum(axis=0), "beta": d_s.sum(axis=0),
            "W2": a.T @ d_pred, "b2": d_pred.sum(axis=0)}


model = Model(
    name="batchnorm",
    x=x, y=y,
    init={"W1": rng.normal(size=(3, H)), "gamma": np.ones(H), "beta": np.zeros(H),
          "W2": 0.5 * rng.normal(size=(H, 1)), "b2": np.zeros(1)},
    forward=forward, loss=loss, backward=backward,
    state={"mean": np.zeros(H), "var": np.ones(H)},
    lr=0.05, epochs=40, batch=8, shuffle=3,               # batches 8, 8, 8, 6: 160 steps
)
