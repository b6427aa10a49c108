"""A correct one-hidden-layer ReLU regression, full batch, whose units are all on at the
start: its pre-activations are >= 0.3 on every sample until the second unit switches off on
one sample at step 6 (its pre-activation then is -0.036, far from the kink). A mistake in
the ReLU's derivative is therefore invisible before step 6; the meta-tests use that.
"""

import numpy as np

from crosscheck import Model

x = np.linspace(-1.0, 1.0, 6).reshape(-1, 1)              # (m, 1)
y = np.abs(x) - 0.5                                       # (m, 1)


def forward(xp, p, x, tap=lambda name, t: t):
    a = tap("a", x @ p["W1"] + p["b1"])                   # (m, h)
    h = xp.where(a > 0, a, 0 * a)                         # ReLU; its derivative at 0 is 0
    return h @ p["W2"] + p["b2"]                          # (m, 1)


def loss(xp, pred, y):
    return xp.mean((pred - y) ** 2)


def backward(p, x, y):
    a = x @ p["W1"] + p["b1"]                             # (m, h)
    h = np.maximum(a, 0)                                  # (m, h)
    pred = h @ p["W2"] + p["b2"]                          # (m, 1)
    dL_dpred = 2 * (pred - y) / y.size                    # (m, 1)
    dL_dW2 = h.T @ dL_dpred                               # (h, 1)
    dL_db2 = dL_dpred.sum(axis=0)                         # (1,)
    dL_dh = dL_dpred @ p["W2"].T                          # (m, h)
    dL_da = dL_dh * (a > 0)                               # (m, h)
    dL_dW1 = x.T @ dL_da                                  # (1, h)
    dL_db1 = dL_da.sum(axis=0)                            # (h,)
    return {"W1": dL_dW1, "b1": dL_db1, "W2": dL_dW2, "b2": dL_db2}


model = Model(
    name="relu_late",
    x=x, y=y,
    init={"W1": np.array([[1.0, -1.0]]), "b1": np.array([1.3, 1.3]),
          "W2": np.array([[0.8], [-0.6]]), "b2": np.array([0.0])},
    forward=forward, loss=loss, backward=backward,
    lr=0.3, epochs=20, relu=("a",),
)
