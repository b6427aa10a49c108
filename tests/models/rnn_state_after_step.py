"""``examples/char_rnn.py`` with a backward through time that forgets, at the chunk's first
character, where the hidden state came from. Its recomputed forward starts from the
carried ``state["h"]``, as it should, but it keeps only the states after each step
(``hs[t]``), and for the state before step 0 it takes zeros, as for a text read in one
piece: ``hs[t - 1] if t > 0 else np.zeros_like(...)`` where the carried state belongs.

The carried state is zero at step 0, so there this backward is exactly right (bit for bit).
From step 1 on the state carried over is the previous chunk's last hidden state, not zero,
and the ``h0.T @ d_z0`` term of the ``Whh`` gradient is missing.

Must be caught as a wrong backward at step 1 (not 0), on Whh alone: h0 enters no other
gradient (Wxh, bh, Why and by agree with autograd).
"""

import numpy as np

from crosscheck import Model
from crosscheck.optim import Adagrad

text = "the cat sat on the mat. the rat sat."
chars = sorted(set(text))
index = np.array([chars.index(c) for c in text])
V, H = len(chars), 10
x = np.eye(V)[index[:-1]]                                 # (T, V): each character, one-hot
y = index[1:]                                             # (T,): the next character's index

LR = 0.1

rng = np.random.default_rng(5)


def forward(xp, p, x, *, state):
    h = state["h"]                                        # (1, H): where the previous chunk ended
    scores = []
    for t in range(x.shape[0]):
        h = xp.tanh(x[t:t + 1] @ p["Wxh"] + h @ p["Whh"] + p["bh"])     # (1, H)
        scores.append(h @ p["Why"] + p["by"])             # (1, V)
    return xp.concat(scores, axis=0), {"h": h}            # (T, V), and the state for the next chunk


def loss(xp, scores, y):
    shifted = scores - xp.max(scores, axis=1, keepdims=True)
    log_probs = shifted - xp.log(xp.sum(xp.exp(shifted), axis=1, keepdims=True))
    one_hot = xp.astype(y[:, None] == xp.arange(scores.shape[1]), scores.dtype)
    return -xp.sum(one_hot * log_probs)                   # summed over the chunk's time steps


def backward(p, x, y, *, state):
    T = x.shape[0]
    hs = []                                               # hs[t] is the hidden state after step t
    h = state["h"]
    for t in range(T):
        h = np.tanh(x[t:t + 1] @ p["Wxh"] + h @ p["Whh"] + p["bh"])
        hs.append(h)
    h_all = np.concatenate(hs, axis=0)                    # (T, H)
    scores = h_all @ p["Why"] + p["by"]                   # (T, V)
    e = np.exp(scores - scores.max(axis=1, keepdims=True))
    d_scores = e / e.sum(axis=1, keepdims=True)
    d_scores[np.arange(T), y] -= 1                        # (T, V)
    grads = {"Wxh": np.zeros_like(p["Wxh"]), "Whh": np.zeros_like(p["Whh"]),
             "bh": np.zeros_like(p["bh"]), "Why": h_all.T @ d_scores, "by": d_scores.sum(axis=0)}
    d_h_next = np.zeros_like(state["h"])                  # from the steps after t, through Whh
    for t in reversed(range(T)):
        d_h = d_scores[t:t + 1] @ p["Why"].T + d_h_next   # (1, H)
        d_z = d_h * (1 - hs[t] ** 2)                      # through the tanh
        h_before = hs[t - 1] if t > 0 else np.zeros_like(hs[0])   # the mistake: state["h"] at t = 0
        grads["Wxh"] += x[t:t + 1].T @ d_z
        grads["Whh"] += h_before.T @ d_z
        grads["bh"] += d_z[0]
        d_h_next = d_z @ p["Whh"].T
    return grads


def update(params, grads, state):
    """Adagrad with eps inside the square root; ``state`` (the optimizer's) starts empty."""
    if not state:
        state["mem"] = {k: np.zeros_like(v) for k, v in params.items()}
    new = {}
    for k, g in grads.items():
        state["mem"][k] = state["mem"][k] + g * g
        new[k] = params[k] - LR * g / np.sqrt(state["mem"][k] + 1e-8)
    return new, state


model = Model(
    name="rnn_state_after_step",
    x=x, y=y,
    init={"Wxh": 0.3 * rng.normal(size=(V, H)), "Whh": 0.3 * rng.normal(size=(H, H)),
          "bh": np.zeros(H), "Why": 0.3 * rng.normal(size=(H, V)), "by": np.zeros(V)},
    forward=forward, loss=loss, backward=backward,
    update=update, optimizer=Adagrad(eps=1e-8, eps_inside_sqrt=True),
    state={"h": np.zeros((1, H))},
    lr=LR, epochs=30, batch=8,                            # chunks of 8, in order: 35 = 4 * 8 + 3, 150 steps
)
