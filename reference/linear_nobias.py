"""Linear 1-1-1 network without bias, y = 2x.

Document ``000_248436dcbf781071.txt``, first cell (``In [None]``, the cell after ``In [19]``).

Quirks of the document, kept as they are:

* The data ``z`` is an int64 column, ``arange(0, 10)``; ``x @ W1`` promotes it to float64.
* Both weights start at ``rand * 0.01``; ``W1`` is drawn first, then ``W2``.
* The training loop names the hidden activations ``A``; ``forward`` calls them ``hidden``
  and ``backward`` calls them ``H``.
* The loss is printed every 100th epoch only, and before that epoch's update. All
  printed epochs are even. The run is a period-2 cycle between 8.4656 and 17.8151
  (see ``crosscheck run``), so the printout shows a flat 8.4656 that looks stalled.
* ``W2`` is updated in place before ``W1``, but ``dL_dW1`` is computed before either
  update, so the order does not matter.
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
CELL = "first cell"
GRADS = {"W1": "dL_dW1", "W2": "dL_dW2"}
SEED = 42
LR = 0.01
EPOCHS = 1000


def data() -> tuple[np.ndarray, np.ndarray]:
    # Goal y = 2x
    z = np.array([np.arange(0, 10)]).T                       # (10, 1) int64
    y = 2 * z                                                # (10, 1) int64
    return z, y


# Initialize params, has 1 hidden layers with 1 neurons, no bias
def init_params(input_shape, output_shape):
    W1 = np.random.rand(input_shape, input_shape) * 0.01     # (1, 1)
    W2 = np.random.rand(input_shape, output_shape) * 0.01    # (1, 1)
    return W1, W2


# Forward propagation
def forward(x, W1, W2):
    hidden = x @ W1                                          # (m, 1)
    output = hidden @ W2                                     # (m, 1)
    return hidden, output


# MSE loss
def MSE(y_true, y_pred):
    return np.mean(np.square(y_true - y_pred))


# Backward propagation
def backward(x, y, W1, W2, H, O, lr=0.01, tape=None):
    dL_dO = 2 * (O - y) / O.shape[0]                         # (m, 1)

    dO_dW2 = H
    dL_dW2 = dO_dW2.T @ dL_dO                                # (1, 1)

    dO_dH = W2
    dH_dW1 = x
    dL_dW1 = dH_dW1.T @ (dL_dO @ dO_dH.T)                    # (1, 1)

    if tape is not None:
        tape.update(dL_dO=dL_dO, dL_dW2=dL_dW2, dL_dW1=dL_dW1)

    W2 -= lr * dL_dW2
    W1 -= lr * dL_dW1

    return W1, W2


def problem(lr: float = LR, epochs: int = EPOCHS) -> Problem:
    """Data, the seeded initial draw and hyper-parameters, for the framework models."""
    np.random.seed(SEED)
    x, y = data()
    init = dict(zip(GRADS, init_params(1, 1), strict=True))
    return make("linear_nobias", "batch", x, y, init, {"lr": lr, "epochs": epochs, "seed": SEED},
                forward_xp, mse)


def forward_xp(xp, p, x, tap=keep):
    """``forward`` for the framework models, once for every array namespace ``xp``."""
    H = tap("H", x @ p["W1"])                                # (m, 1)
    return tap("O", H @ p["W2"])                             # (m, 1)


def loss_at(params, hyper=None, sample=None):
    """The document's loss at ``params`` (and nothing recorded): for the oracles."""
    z, y = data()
    H, O = forward(z, params["W1"], params["W2"])
    return MSE(y, O), ()


def gradient(params, hyper, sample=None):
    """The loss and the manual gradients at ``params``, by the document's own functions."""
    return manual_step(data, forward, MSE, backward, GRADS, params, hyper["lr"])


def run(lr: float = LR, epochs: int = EPOCHS) -> Trajectory:
    """The document's training loop, every epoch recorded."""
    np.random.seed(SEED)
    z, y = data()

    # Training loop
    W1, W2 = init_params(1, 1)
    rec = Recorder({"W1": W1, "W2": W2}, steps=epochs, epochs=epochs)
    for epoch in range(epochs):
        A, O = forward(z, W1, W2)
        loss = MSE(y, O)
        rec.epoch_loss[epoch] = loss
        tape = {}
        W1, W2 = backward(z, y, W1, W2, A, O, lr, tape=tape)
        rec.step(loss, {"W1": tape["dL_dW1"], "W2": tape["dL_dW2"]}, {"W1": W1, "W2": W2})

    return rec.finish(case="linear_nobias", framework="numpy",
                      hyper={"lr": lr, "epochs": epochs, "seed": SEED},
                      pred_train=forward(z, W1, W2)[1])


def transcript(traj: Trajectory) -> str:
    return "\n".join([*epoch_lines(traj), *final_block(traj, data()[1], scalar_biases=False)])


CASE = Case(
    name="linear_nobias", document=DOCUMENT, cell=CELL, position=1,
    summary="y = 2x, 1-1-1 linear without bias, weights rand*0.01, 1000 full-batch epochs",
    params=tuple(GRADS), problem=problem, run_reference=run, gradient=gradient, loss_at=loss_at,
    transcript=transcript, curvature=True,
    # The document never names dL/dH; it is inline in dL_dW1.
    source=Source(backward, "W2 -= lr * dL_dW2", GRADS, {"dL_dO": "O"}))
