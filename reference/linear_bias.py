"""Linear 1-1-1 network with scalar biases, y = 2x + 3.

Document ``000_248436dcbf781071.txt``, second cell (``In [None]``).

Quirks of the document, kept as they are:

* ``b1`` and ``b2`` are Python floats from ``np.random.random()``, one scalar shared
  by every unit (not a per-unit bias); after the first update they are ``np.float64``.
* Draw order: ``W1``, ``b1``, ``W2``, ``b2``; only the weights are scaled by 0.01.
* ``dL_db1 = np.sum(dL_dH)`` sums over samples *and* units: right for a shared
  scalar bias.
* The loss is printed every 100th epoch only, before that epoch's update.
"""

from __future__ import annotations

import numpy as np

from crosscheck.declaring.cases import Case, Source
from crosscheck.declaring.problem import Problem, make
from crosscheck.reference._common import (
    Recorder,
    Trajectory,
    epoch_lines,
    final_block,
    keep,
    manual_step,
    mse,
)

DOCUMENT = "000_248436dcbf781071.txt"
CELL = "second cell"
GRADS = {"W1": "dL_dW1", "b1": "dL_db1", "W2": "dL_dW2", "b2": "dL_db2"}
SEED = 42
LR = 0.01
EPOCHS = 1000


def data() -> tuple[np.ndarray, np.ndarray]:
    # Goal y = 2x + 3
    z = np.array([np.arange(0, 10)]).T                       # (10, 1) int64
    y = 2 * z + 3                                            # (10, 1) int64
    return z, y


# Initialize params, has 1 hidden layers with 1 neurons, with bias
def init_params(input_shape, output_shape):
    W1 = np.random.rand(input_shape, input_shape) * 0.01     # (1, 1)
    b1 = np.random.random()                                  # scalar
    W2 = np.random.rand(input_shape, output_shape) * 0.01    # (1, 1)
    b2 = np.random.random()                                  # scalar
    return W1, b1, W2, b2


# Forward propagation
def forward(x, W1, b1, W2, b2):
    hidden = x @ W1 + b1                                     # (m, 1)
    output = hidden @ W2 + b2                                # (m, 1)
    return hidden, output


# MSE loss
def MSE(y_true, y_pred):
    return np.mean(np.square(y_true - y_pred))


# Backward propagation
def backward(x, y, W1, b1, W2, b2, H, O, lr=0.01, tape=None):
    dL_dO = 2 * (O - y) / O.shape[0]                         # (m, 1)

    dL_db2 = np.sum(dL_dO)                                   # scalar

    dO_dW2 = H
    dL_dW2 = dO_dW2.T @ dL_dO                                # (1, 1)

    dO_dH = W2
    dL_dH = dL_dO @ dO_dH.T                                  # (m, 1)
    dL_db1 = np.sum(dL_dH)                                   # scalar

    dH_dW1 = x
    dL_dW1 = dH_dW1.T @ (dL_dH)                              # (1, 1)

    if tape is not None:
        tape.update(dL_dO=dL_dO, dL_db2=dL_db2, dL_dW2=dL_dW2, dL_dH=dL_dH,
                    dL_db1=dL_db1, dL_dW1=dL_dW1)

    b2 -= lr * dL_db2
    W2 -= lr * dL_dW2
    b1 -= lr * dL_db1
    W1 -= lr * dL_dW1

    return W1, b1, W2, b2


def problem(lr: float = LR, epochs: int = EPOCHS) -> Problem:
    """Data, the seeded initial draw and hyper-parameters, for the framework models."""
    np.random.seed(SEED)
    x, y = data()
    init = dict(zip(GRADS, init_params(1, 1), strict=True))
    return make("linear_bias", "batch", x, y, init, {"lr": lr, "epochs": epochs, "seed": SEED},
                forward_xp, mse)


def forward_xp(xp, p, x, tap=keep):
    """``forward`` for the framework models, once for every array namespace ``xp``."""
    H = tap("H", x @ p["W1"] + p["b1"])                      # (m, 1)
    return tap("O", H @ p["W2"] + p["b2"])                   # (m, 1)


def loss_at(params, hyper=None, sample=None):
    z, y = data()
    H, O = forward(z, params["W1"], params["b1"], params["W2"], params["b2"])
    return MSE(y, O), ()


def gradient(params, hyper, sample=None):
    """The loss and the manual gradients at ``params``, by the document's own functions."""
    return manual_step(data, forward, MSE, backward, GRADS, params, hyper["lr"])


def run(lr: float = LR, epochs: int = EPOCHS) -> Trajectory:
    """The document's training loop, every epoch recorded."""
    np.random.seed(SEED)
    z, y = data()

    # Training loop
    W1, b1, W2, b2 = init_params(1, 1)
    rec = Recorder({"W1": W1, "b1": b1, "W2": W2, "b2": b2}, steps=epochs, epochs=epochs)
    for epoch in range(epochs):
        A, O = forward(z, W1, b1, W2, b2)
        loss = MSE(y, O)
        rec.epoch_loss[epoch] = loss
        tape = {}
        W1, b1, W2, b2 = backward(z, y, W1, b1, W2, b2, A, O, lr, tape=tape)
        rec.step(loss, {p: tape[g] for p, g in GRADS.items()},
                 {"W1": W1, "b1": b1, "W2": W2, "b2": b2})

    return rec.finish(case="linear_bias", framework="numpy",
                      hyper={"lr": lr, "epochs": epochs, "seed": SEED},
                      pred_train=forward(z, W1, b1, W2, b2)[1])


def transcript(traj: Trajectory) -> str:
    return "\n".join([*epoch_lines(traj), *final_block(traj, data()[1], scalar_biases=True)])


CASE = Case(
    name="linear_bias", document=DOCUMENT, cell=CELL, position=2,
    summary="y = 2x + 3, 1-1-1 linear with scalar biases, 1000 full-batch epochs",
    params=tuple(GRADS), problem=problem, run_reference=run, gradient=gradient, loss_at=loss_at,
    transcript=transcript, curvature=True,
    source=Source(backward, "b2 -= lr * dL_db2", GRADS, {"dL_dO": "O", "dL_dH": "H"}))
