"""A character-level vanilla RNN (tanh) trained by truncated backpropagation through time,
shaped like the well-known minimal NumPy char-RNN: the text is read in consecutive chunks,
the hidden state at the end of one chunk is where the next one starts, each chunk's loss is
the summed cross-entropy of predicting the next character, and the optimizer is Adagrad
with its epsilon inside the square root.

It checks the backward through time (every step's share of ``Whh``, ``Wxh`` and ``bh``,
starting from the carried hidden state, which the gradient does not flow into), that the
carried state is the forward's (``state["h"]``, not trained), and the hand-written Adagrad
against ``torch.optim.Adagrad`` given the same gradients.

Layout: time steps are the samples, along axis 0: ``x`` is (T, V), one-hot characters;
``y`` is (T,), the index of the character that follows each one. The hidden state is a row,
(1, H).

    crosscheck run examples/char_rnn.py
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
    hs = [state["h"]]                                     # hs[t + 1] is the hidden state after step t
    for t in range(T):
        hs.append(np.tanh(x[t:t + 1] @ p["Wxh"] + hs[-1] @ p["Whh"] + p["bh"]))
    h_all = np.concatenate(hs[1:], axis=0)                # (T, H)
    scores = h_all @ p["Why"] + p["by"]                   # (T, V)
    e = np.exp(scores - scores.max(axis=1, keepdims=True))
    d_scores = e / e.sum(axis=1, keepdims=True)
    d_scores[np.arange(T), y] -= 1                        # (T, V)
    grads = {"Wxh": np.zeros_like(p["Wxh"]), "Whh": np.zeros_like(p["Whh"]),
             "bh": np.zeros_like(p["bh"]), "Why": h_all.T @ d_scores, "by": d_scores.sum(axis=0)}
    d_h_next = np.zeros_like(state["h"])                  # from the steps after t, through Whh
    for t in reversed(range(T)):
        d_h = d_scores[t:t + 1] @ p["Why"].T + d_h_next   # (1, H)
        d_z = d_h * (1 - hs[t + 1] ** 2)                  # through the tanh
        grads["Wxh"] += x[t:t + 1].T @ d_z
        grads["Whh"] += hs[t].T @ d_z                     # hs[t]: the state before step t
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
    name="char_rnn",
    x=x, y=y,
    init={"Wxh": 0.3 * rng.normal(size=(V, H)), "Whh": 0.3 * rng.normal(size=(H, H)),
          "bh": np.zeros(H), "Why": 0.3 * rng.normal(size=(H, V)), "by": np.zeros(V)},
    forward=forward, loss=loss, backward=backward,
    update=update, optimizer=Adagrad(eps=1e-8, eps_inside_sqrt=True),
    state={"h": np.zeros((1, H))},
    lr=LR, epochs=30, batch=8,                            # chunks of 8, in order: 35 = 4 * 8 + 3, 150 steps
)
