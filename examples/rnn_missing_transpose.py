"""A tanh RNN over a five-step sequence, trained by backpropagation through time, in the
column layout of the classic character RNN: the hidden state is a column, and each time
step's input and target are a column of x and y (``sample_axis=1``: the samples run along
the columns). Its backward carries the gradient from step t + 1 back to step t through the
recurrent weights, and there it forgets a transpose:

    dh_next = Whh @ dz        (the gradient of Whh @ h is Whh.T @ dz)

Whh is square, so the shapes never complain. Every gradient that flows through the
recurrence is wrong; no single array shows a pattern. The mistake vanishes where Whh is
symmetric, and that is how it is named:

    crosscheck run examples/rnn_missing_transpose.py      # exit 1, named a transpose
"""

import numpy as np

from crosscheck import Model

rng = np.random.default_rng(11)
T, n_in, n_hidden, n_out = 5, 3, 4, 2
x = rng.normal(size=(n_in, T))                              # one column per time step
y = rng.normal(size=(n_out, T))


def forward(xp, p, x, tap=lambda name, t: t):
    h = xp.zeros((p["Whh"].shape[0], 1), dtype=x.dtype)
    outputs = []
    for t in range(x.shape[1]):
        z = tap(f"z{t}", p["Wxh"] @ x[:, t:t + 1] + p["Whh"] @ h + p["bh"])
        h = xp.tanh(z)
        outputs.append(p["Why"] @ h + p["by"])
    return xp.concat(outputs, axis=1)                       # (n_out, T)


def loss(xp, pred, y):
    return xp.sum((pred - y) ** 2) / (2 * y.shape[1])      # half the squared error, per step


def backward(p, x, y):
    Wxh, Whh, Why = p["Wxh"], p["Whh"], p["Why"]
    steps = x.shape[1]
    h = {-1: np.zeros((Whh.shape[0], 1))}
    out = {}
    for t in range(steps):                                  # the forward again, keeping every h
        h[t] = np.tanh(Wxh @ x[:, t:t + 1] + Whh @ h[t - 1] + p["bh"])
        out[t] = Why @ h[t] + p["by"]
    grads = {name: np.zeros_like(value) for name, value in p.items()}
    dh_next = np.zeros_like(h[0])
    for t in reversed(range(steps)):
        dout = (out[t] - y[:, t:t + 1]) / steps
        grads["Why"] += dout @ h[t].T
        grads["by"] += dout
        dh = Why.T @ dout + dh_next                         # from the output, and from step t + 1
        dz = (1 - h[t] ** 2) * dh                           # through the tanh
        grads["Wxh"] += dz @ x[:, t:t + 1].T
        grads["Whh"] += dz @ h[t - 1].T
        grads["bh"] += dz
        dh_next = Whh @ dz                                  # the mistake: Whh.T @ dz
    return grads


model = Model(name="rnn_missing_transpose", x=x, y=y,
              init={"Wxh": 0.5 * rng.normal(size=(n_hidden, n_in)),
                    "Whh": 0.5 * rng.normal(size=(n_hidden, n_hidden)), "bh": np.zeros((n_hidden, 1)),
                    "Why": 0.5 * rng.normal(size=(n_out, n_hidden)), "by": np.zeros((n_out, 1))},
              forward=forward, loss=loss, backward=backward, lr=0.1, epochs=20, sample_axis=1)
