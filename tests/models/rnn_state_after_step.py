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

import dataclasses

import numpy as np
from _examples import example

base = example("char_rnn")   # the correct model; only its backward is replaced


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


model = dataclasses.replace(base.model, name="rnn_state_after_step", backward=backward)
