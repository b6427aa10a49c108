"""A softmax classifier with one tanh hidden layer and an L2 penalty on its two weight
matrices, trained on shuffled mini-batches by a hand-written Adam: the shape of the usual
"write Adam yourself" exercise of a first deep-learning course, with integer class labels.

It checks three things a from-scratch classifier gets wrong: the softmax cross-entropy
gradient against integer labels (no one-hot targets in the data), the penalty's share of
each weight gradient (``2 * LAM * W``; the biases are not penalised), and the optimizer:
the update, first and second moments with their bias correction, against
``torch.optim.Adam`` given the same gradients.

    crosscheck run examples/adam_minibatch.py
"""

import numpy as np

from crosscheck import Model
from crosscheck.optim import Adam

rng = np.random.default_rng(11)
x = rng.normal(size=(24, 2))                              # (m, n)
labels = np.argmax(x @ np.array([[2.0, -1.0, -1.0], [0.0, 1.5, -1.5]]), axis=1)   # (m,) ints in 0..2

LR = 0.05
BETAS = (0.9, 0.999)
EPS = 1e-8
LAM = 0.01                                                # L2 strength: LAM * (sum W1^2 + sum W2^2)


def forward(xp, p, x):
    h = xp.tanh(x @ p["W1"] + p["b1"])                    # (m, h)
    return h @ p["W2"] + p["b2"]                          # (m, k) class scores


def loss(xp, scores, y):
    shifted = scores - xp.max(scores, axis=1, keepdims=True)
    log_probs = shifted - xp.log(xp.sum(xp.exp(shifted), axis=1, keepdims=True))
    one_hot = xp.astype(y[:, None] == xp.arange(scores.shape[1]), scores.dtype)   # (m, k)
    return -xp.mean(xp.sum(one_hot * log_probs, axis=1))


def penalty(xp, p):
    return LAM * (xp.sum(p["W1"] ** 2) + xp.sum(p["W2"] ** 2))


def backward(p, x, y):
    m = x.shape[0]
    h = np.tanh(x @ p["W1"] + p["b1"])                    # (m, h)
    scores = h @ p["W2"] + p["b2"]                        # (m, k)
    e = np.exp(scores - scores.max(axis=1, keepdims=True))
    probs = e / e.sum(axis=1, keepdims=True)
    d_scores = probs.copy()
    d_scores[np.arange(m), y] -= 1                        # softmax minus the one-hot of y
    d_scores /= m                                         # the loss is a mean over the batch
    d_h = d_scores @ p["W2"].T                            # (m, h)
    d_z1 = d_h * (1 - h ** 2)                             # (m, h)
    return {"W1": x.T @ d_z1 + 2 * LAM * p["W1"], "b1": d_z1.sum(axis=0),
            "W2": h.T @ d_scores + 2 * LAM * p["W2"], "b2": d_scores.sum(axis=0)}


def update(params, grads, state):
    """Adam, as torch.optim.Adam does it; ``state`` starts empty."""
    b1, b2 = BETAS
    if not state:
        state["t"] = 0
        state["m"] = {k: np.zeros_like(v) for k, v in params.items()}
        state["v"] = {k: np.zeros_like(v) for k, v in params.items()}
    state["t"] += 1
    t = state["t"]
    new = {}
    for k, g in grads.items():
        state["m"][k] = b1 * state["m"][k] + (1 - b1) * g
        state["v"][k] = b2 * state["v"][k] + (1 - b2) * g * g
        m_hat = state["m"][k] / (1 - b1 ** t)             # bias correction: the moments start at 0
        v_hat = state["v"][k] / (1 - b2 ** t)
        new[k] = params[k] - LR * m_hat / (np.sqrt(v_hat) + EPS)
    return new, state


model = Model(
    name="adam_minibatch",
    x=x, y=labels,
    init={"W1": 0.5 * rng.normal(size=(2, 6)), "b1": np.zeros(6),
          "W2": 0.5 * rng.normal(size=(6, 3)), "b2": np.zeros(3)},
    forward=forward, loss=loss, penalty=penalty, backward=backward,
    update=update, optimizer=Adam(betas=BETAS, eps=EPS),
    lr=LR, epochs=40, batch=8, shuffle=7,                 # 3 steps an epoch, 120 in all
)
