"""A 2-layer tanh network with softmax cross-entropy and per-unit bias vectors, trained
full-batch, with its backward derived by hand.

    crosscheck run examples/tanh_softmax.py
    crosscheck explain examples/tanh_softmax.py --step 10
"""

import numpy as np

from crosscheck import Model

rng = np.random.default_rng(0)
x = rng.normal(size=(12, 2))                              # (m, n)
labels = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0.5)      # 3 classes
y = np.eye(3)[labels]                                     # (m, k) one-hot


def forward(xp, p, x, tap=lambda name, t: t):
    z1 = tap("z1", x @ p["W1"] + p["b1"])                 # (m, h)
    h = tap("h", xp.tanh(z1))                             # (m, h)
    return tap("logits", h @ p["W2"] + p["b2"])           # (m, k)


def loss(xp, logits, y):
    shifted = logits - xp.max(logits, axis=1, keepdims=True)
    log_softmax = shifted - xp.log(xp.sum(xp.exp(shifted), axis=1, keepdims=True))
    return -xp.mean(xp.sum(y * log_softmax, axis=1))


def backward(p, x, y):
    m = x.shape[0]
    z1 = x @ p["W1"] + p["b1"]
    h = np.tanh(z1)
    logits = h @ p["W2"] + p["b2"]
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    dL_dlogits = (e / e.sum(axis=1, keepdims=True) - y) / m   # (m, k)
    dL_dW2 = h.T @ dL_dlogits                                 # (h, k)
    dL_db2 = dL_dlogits.sum(axis=0)                           # (k,)
    dL_dh = dL_dlogits @ p["W2"].T                            # (m, h)
    dL_dz1 = dL_dh * (1 - h ** 2)                             # (m, h)
    dL_dW1 = x.T @ dL_dz1                                     # (n, h)
    dL_db1 = dL_dz1.sum(axis=0)                               # (h,)
    grads = {"W1": dL_dW1, "b1": dL_db1, "W2": dL_dW2, "b2": dL_db2}
    return grads, {"logits": dL_dlogits, "h": dL_dh, "z1": dL_dz1}


model = Model(
    name="tanh_softmax",
    x=x, y=y,
    init={"W1": 0.5 * rng.normal(size=(2, 4)), "b1": np.zeros(4),
          "W2": 0.5 * rng.normal(size=(4, 3)), "b2": np.zeros(3)},
    forward=forward, loss=loss, backward=backward,
    lr=0.5, epochs=200, batch="full",
)
