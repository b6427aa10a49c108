"""ReLU 1-1-1 network (functional), ReLU on the hidden *and* the output layer, y = 2x + 3.

Document ``000_248436dcbf781071.txt``, third cell (``In [65]``).

Quirks of the document, kept as they are:

* The initial values are drawn without the ``* 0.01`` of the two linear cells.
* The output layer has a ReLU too, so a regression output can never go below 0.
* ``relu_deriv`` is ``(z > 0)``: the derivative at exactly 0 is taken as 0.
* Inside ``forward`` the name ``z`` is the output pre-activation, while the module-level
  ``z`` of the linear cells was the input; here the input is ``x``.
* The printed output is cut off in the middle of the prediction (``[23.72``): the
  transcript test compares the document's text as a prefix.
* The hidden unit is inactive on sample x = 0 for most of the run (``a = b1 < 0``), so
  the prediction there is ``b2``, not 3: a partly dead ReLU unit.
"""

from __future__ import annotations

import numpy as np

from crosscheck.declaring.cases import Case, Kink, Source
from crosscheck.declaring.problem import Problem, make
from crosscheck.reference._common import (
    Recorder,
    Trajectory,
    epoch_lines,
    final_block,
    manual_step,
    mse,
    two_layer,
)

DOCUMENT = "000_248436dcbf781071.txt"
CELL = "third cell (In [65])"
GRADS = {"W1": "dL_dW1", "b1": "dL_db1", "W2": "dL_dW2", "b2": "dL_db2"}
#: ReLU pre-activation -> parameters with exactly zero gradient while it is <= 0 on every sample.
UNIT_PARAMS = {"a": ("W1", "b1", "W2"), "z": ("W1", "b1", "W2", "b2")}
SEED = 42
LR = 0.01
EPOCHS = 3000


def data() -> tuple[np.ndarray, np.ndarray]:
    # Goal y = 2x + 3
    x = np.array([np.arange(0, 10)]).T                       # (10, 1) int64
    y = 2 * x + 3                                            # (10, 1) int64
    return x, y


# Initialize params, has 1 hidden layers with 1 neurons, with bias
def init_params(input_shape, output_shape):
    W1 = np.random.rand(input_shape, input_shape)            # (1, 1)
    b1 = np.random.random()                                  # scalar
    W2 = np.random.rand(input_shape, output_shape)           # (1, 1)
    b2 = np.random.random()                                  # scalar
    return W1, b1, W2, b2


def relu(z):
    return np.maximum(0, z)


def relu_deriv(z):
    return (z > 0).astype(float)


# Forward propagation, now using ReLU as activation
def forward(x, W1, b1, W2, b2):
    a = x @ W1 + b1                                          # (m, 1)
    A = relu(a)                                              # (m, 1)
    z = A @ W2 + b2                                          # (m, 1)
    O = relu(z)                                              # (m, 1)
    return a, A, z, O


# MSE loss
def MSE(y_true, y_pred):
    return np.mean(np.square(y_true - y_pred))


# Backward propagation
def backward(x, y, W1, b1, W2, b2, a, A, z, O, lr=0.01, tape=None):
    dL_dO = 2 * (O - y) / O.shape[0]                         # (m, 1)
    dO_dz = relu_deriv(z)                                    # (m, 1)
    dL_dz = dL_dO * dO_dz                                    # (m, 1)

    dL_db2 = np.sum(dL_dz)                                   # scalar

    dz_dW2 = A
    dL_dW2 = dz_dW2.T @ dL_dz                                # (1, 1)

    dz_dA = W2
    dL_dA = dL_dz @ dz_dA.T                                  # (m, 1)

    dA_da = relu_deriv(a)                                    # (m, 1)
    dL_da = dL_dA * dA_da                                    # (m, 1)
    dL_db1 = np.sum(dL_da)                                   # scalar

    da_dw1 = x
    dL_dW1 = da_dw1.T @ (dL_da)                              # (1, 1)

    if tape is not None:
        tape.update(dL_dO=dL_dO, dL_dz=dL_dz, dL_db2=dL_db2, dL_dW2=dL_dW2, dL_dA=dL_dA,
                    dL_da=dL_da, dL_db1=dL_db1, dL_dW1=dL_dW1)

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
    return make("relu", "batch", x, y, init, {"lr": lr, "epochs": epochs, "seed": SEED},
                two_layer(("relu", "relu")), mse, masks=("a", "z"))


def loss_at(params, hyper=None, sample=None):
    """The loss at ``params``, and which side of each ReLU kink every pre-activation is on."""
    x, y = data()
    a, A, z, O = forward(x, params["W1"], params["b1"], params["W2"], params["b2"])
    return MSE(y, O), (tuple((a > 0).ravel()), tuple((z > 0).ravel()))


def gradient(params, hyper, sample=None):
    """The loss and the manual gradients at ``params``, by the document's own functions."""
    return manual_step(data, forward, MSE, backward, GRADS, params, hyper["lr"])


def run(lr: float = LR, epochs: int = EPOCHS) -> Trajectory:
    """The document's training loop, every epoch recorded."""
    np.random.seed(SEED)
    x, y = data()

    # Training loop
    W1, b1, W2, b2 = init_params(1, 1)
    rec = Recorder({"W1": W1, "b1": b1, "W2": W2, "b2": b2}, steps=epochs, epochs=epochs,
                   masks={"a": (x.shape[0], 1), "z": (x.shape[0], 1)})
    for epoch in range(epochs):
        a, A, z, O = forward(x, W1, b1, W2, b2)
        loss = MSE(y, O)
        rec.epoch_loss[epoch] = loss
        tape = {}
        W1, b1, W2, b2 = backward(x, y, W1, b1, W2, b2, a, A, z, O, lr, tape=tape)
        rec.step(loss, {p: tape[g] for p, g in GRADS.items()},
                 {"W1": W1, "b1": b1, "W2": W2, "b2": b2}, {"a": a > 0, "z": z > 0})

    return rec.finish(case="relu", framework="numpy",
                      hyper={"lr": lr, "epochs": epochs, "seed": SEED},
                      pred_train=forward(x, W1, b1, W2, b2)[3])


def transcript(traj: Trajectory) -> str:
    return "\n".join([*epoch_lines(traj), *final_block(traj, data()[1], scalar_biases=True)])


#: A start where both pre-activations hit exactly 0 with nonzero upstream gradients on the
#: document's data (a = x - 1 at x = 1, z = A): where ``crosscheck kinks`` checks the forward.
KINK_INIT = {"W1": [[1.0]], "b1": -1.0, "W2": [[1.0]], "b2": 0.0}

CASE = Case(
    name="relu", document=DOCUMENT, cell=CELL, position=3,
    summary="y = 2x + 3, ReLU on hidden and output, init without *0.01, 3000 epochs",
    params=tuple(GRADS), problem=problem, run_reference=run, gradient=gradient, loss_at=loss_at,
    transcript=transcript, curvature=True,
    units={"a": ("hidden", 0), "z": ("output", 0)}, unit_params=UNIT_PARAMS,
    source=Source(backward, "b2 -= lr * dL_db2", GRADS,
                  {"dL_dO": "O", "dL_dz": "z", "dL_dA": "A", "dL_da": "a"}),
    kink=Kink(KINK_INIT, "where a = x - 1 and z = A hit exactly 0 with nonzero upstream gradients"))
