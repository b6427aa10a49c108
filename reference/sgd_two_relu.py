"""Two ReLU hidden units, hand-set init, per-sample SGD in plain Python, y = 2x.

Document ``002_864d8709852ec334.txt``, cells ``In [5]`` to ``In [10]``.

Quirks of the document, kept as they are:

* **The printed run is the training cell's second execution.** Its ``Epoch 0`` line
  already shows ``Loss: 0.0000`` with ``w1: 1.3998``: a fresh run from the hand-set
  init prints ``Loss: 197.5878 | w1: 0.5108`` there. The cell is ``In [10]`` and no
  ``In [9]`` appears: ``In [9]`` was an earlier execution of the same 100-epoch cell,
  whose output the document does not show. Running the cell twice from the init of
  ``In [6]`` reproduces every printed number, and no other count does (a third run
  prints ``b1: -0.3056`` at its epoch 0, the document ``-0.3033``). So this case trains
  ``RUNS = 2`` times 100 epochs; the trajectory holds both, and the transcript prints
  the second, whose epoch counter restarts at 0.
* The final print says "input 7" but the code calls ``predict(9)``.
* The output is cut off in the middle of the ``Epoch 80`` line; epoch 90 and the
  prediction do not appear. The transcript test compares the document's text as a prefix.
* ``relu`` is Python's ``max(0, x)``: it returns the *int* 0 for ``x <= 0``.
  ``relu_derivative`` is 0 at exactly 0.
* Unit 2 starts with ``w2 = -0.1, b2 = 0``: ``z2 = -0.1 * x < 0`` on every sample, so
  ``h2 = 0`` and the gradients of ``w2``, ``b2`` and ``w4`` are exactly 0 at every step.
  That unit never learns; the printed ``w2 = -0.1000, b2 = 0.0000, w4 = 0.1000`` never move.
* The loss is the per-sample squared error; the printed ``Loss`` is the epoch's sum.
* A comment in the update block reads ``w1 -= lr * dw1`` inside the comment.
"""

from __future__ import annotations

from crosscheck.declaring.cases import Case, Kink, Source
from crosscheck.declaring.problem import Problem, make
from crosscheck.reference._common import Recorder, Trajectory, keep, squared_error
from crosscheck.reference._common import relu as relu_xp

DOCUMENT = "002_864d8709852ec334.txt"
CELL = "second program (In [5] to In [10]), cell In [10] run twice"
GRADS = {"w1": "dw1", "b1": "db1", "w2": "dw2", "b2": "db2", "w3": "dw3", "w4": "dw4", "b3": "db3"}
LR = 0.01
EPOCHS = 100
RUNS = 2
TEST_DATA = 9
#: ReLU pre-activation -> parameters with exactly zero gradient while the unit is off.
UNIT_PARAMS = {"z1": ("w1", "b1", "w3"), "z2": ("w2", "b2", "w4")}


def data() -> tuple[list[int], list[int]]:
    input = [1, 2, 3, 4, 5]
    output = [2, 4, 6, 8, 10]
    return input, output


def init_params():
    w1 , b1 = 0.1, 0.0
    w2 , b2 = -0.1, 0.0
    w3 , w4 = 0.1, 0.1
    b3 = 0.0
    return {"w1": w1, "b1": b1, "w2": w2, "b2": b2, "w3": w3, "w4": w4, "b3": b3}


def relu(x):
    return max(0, x)


def relu_derivative(x):
    return 1 if x > 0 else 0


def predict(x, w1, b1, w2, b2, w3, w4, b3):
    z1 = w1 * x + b1
    h1 = relu(z1)

    z2 = w2 * x + b2
    h2 = relu(z2)

    y_output = w3 * h1 + w4 * h2 + b3
    return y_output


def train_cell(p, input, output, lr, epochs, rec):
    """One execution of cell ``In [10]``, from the parameters ``p`` left by the last one."""
    w1, b1, w2, b2, w3, w4, b3 = (p[k] for k in GRADS)
    for epoch in range(epochs):
        total_loss = 0
        # Forward pass
        for x, y in zip(input, output):
            z1 = w1 * x + b1
            h1 = relu(z1)

            z2 = w2 * x + b2
            h2 = relu(z2)

            z3 = w3 * h1 + w4 * h2 + b3
            y_pred = z3

            error = y_pred - y
            loss = error ** 2
            total_loss += loss

            # Backpropagation
            dL_dy = 2 * (error)

            dw3 = dL_dy * h1
            dw4 = dL_dy * h2
            db3 = dL_dy

            # Calculate gradients for h1 and h2
            dh1 = dL_dy * w3
            dh2 = dL_dy * w4

            # Calculate gradients for z1 and z2
            dz1 = dh1 * relu_derivative(z1)
            dz2 = dh2 * relu_derivative(z2)

            # Calculate gradients for w1, w2, b1, and b2
            dw1 = dz1 * x
            db1 = dz1

            dw2 = dz2 * x
            db2 = dz2

            # Update weights and biases        w1 -= lr * dw1
            w1 = w1 - lr * dw1
            b1 = b1 - lr * db1

            w2 = w2 - lr * dw2
            b2 = b2 - lr * db2

            w3 = w3 - lr * dw3
            w4 = w4 - lr * dw4
            b3 = b3 - lr * db3

            rec.step(loss,
                     {"w1": dw1, "b1": db1, "w2": dw2, "b2": db2, "w3": dw3, "w4": dw4, "b3": db3},
                     {"w1": w1, "b1": b1, "w2": w2, "b2": b2, "w3": w3, "w4": w4, "b3": b3},
                     {"z1": z1 > 0, "z2": z2 > 0})
        rec.epoch_loss[rec.k // len(input) - 1] = total_loss
    return {"w1": w1, "b1": b1, "w2": w2, "b2": b2, "w3": w3, "w4": w4, "b3": b3}


def loss_at(params, hyper=None, sample=0):
    """Sample ``sample``'s squared error at ``params``, and the sides of both ReLU kinks."""
    input, output = data()
    x, y = input[sample], output[sample]
    error = predict(x, **{k: float(v) for k, v in params.items()}) - y
    z1, z2 = params["w1"] * x + params["b1"], params["w2"] * x + params["b2"]
    return error ** 2, (bool(z1 > 0), bool(z2 > 0))


def problem(lr: float = LR, epochs: int = EPOCHS, runs: int = RUNS) -> Problem:
    """Data, the hand-set init of ``In [6]`` and hyper-parameters, for the framework models."""
    input, output = data()
    return make("sgd_two_relu", "sgd", input, output, init_params(),
                {"lr": lr, "epochs": epochs, "runs": runs, "test_input": TEST_DATA},
                forward_xp, squared_error, x_test=[TEST_DATA], masks=("z1", "z2"))


def forward_xp(xp, p, x, tap=keep):
    """``predict`` for the framework models, once for every array namespace ``xp``."""
    z1 = tap("z1", p["w1"] * x + p["b1"])
    h1 = tap("h1", relu_xp(xp, z1))
    z2 = tap("z2", p["w2"] * x + p["b2"])
    h2 = tap("h2", relu_xp(xp, z2))
    return tap("z3", p["w3"] * h1 + p["w4"] * h2 + p["b3"])


def gradient(params, hyper, sample=0):
    """Sample ``sample``'s loss and manual gradients at ``params``: one pass of ``In [10]``."""
    input, output = data()
    rec = Recorder(params, steps=1, epochs=1, masks={"z1": (), "z2": ()})
    train_cell({k: float(params[k]) for k in GRADS}, input[sample:sample + 1],
               output[sample:sample + 1], hyper["lr"], 1, rec)
    return rec.step_loss[0], {k: rec.grads[k][0] for k in GRADS}


def run(lr: float = LR, epochs: int = EPOCHS, runs: int = RUNS) -> Trajectory:
    """``In [6]`` once, then the training cell ``In [10]`` executed ``runs`` times."""
    input, output = data()
    p = init_params()
    rec = Recorder(p, steps=runs * epochs * len(input), epochs=runs * epochs,
                   masks={"z1": (), "z2": ()})
    for _ in range(runs):
        p = train_cell(p, input, output, lr, epochs, rec)

    predicted = predict(TEST_DATA, **p)
    return rec.finish(case="sgd_two_relu", framework="numpy",
                      hyper={"lr": lr, "epochs": epochs, "runs": runs, "test_input": TEST_DATA},
                      pred_train=[predict(x, **p) for x in input], pred_test=[predicted])


def transcript(traj: Trajectory) -> str:
    """What the last execution of ``In [10]`` prints (the one the document shows)."""
    per_epoch = len(data()[0])
    epochs = traj.hyper["epochs"]
    first = traj.epochs - epochs
    lines = []
    for epoch in range(0, epochs, 10):
        p = {k: v[(first + epoch + 1) * per_epoch] for k, v in traj.params.items()}
        lines.append(
            f'Epoch {epoch}| Loss: {traj.epoch_loss[first + epoch]:.4f} | w1: {p["w1"]:.4f} | '
            f'b1: {p["b1"]:.4f} | w2: {p["w2"]:.4f} | b2: {p["b2"]:.4f} | w3: {p["w3"]:.4f} | '
            f'w4: {p["w4"]:.4f} | b3: {p["b3"]:.4f}')
    lines.append(f"Predicted value for input 7 is {traj.pred_test[0]}")
    return "\n".join(lines)


#: A start where both hidden pre-activations hit exactly 0 on the first sample (x = 1) with
#: nonzero upstream gradients (w3 = w4 = 1, error -2): where ``crosscheck kinks`` checks the forward.
KINK_INIT = {"w1": 1.0, "b1": -1.0, "w2": 1.0, "b2": -1.0, "w3": 1.0, "w4": 1.0, "b3": 0.0}

CASE = Case(
    name="sgd_two_relu", document=DOCUMENT, cell=CELL, position=2,
    summary="two ReLU hidden units, hand-set init, per-sample SGD on 1..5, cell run twice",
    params=tuple(GRADS), problem=problem, run_reference=run, gradient=gradient, loss_at=loss_at,
    transcript=transcript, reruns=("lr", "epochs", "runs"),
    units={"z1": ("hidden", 0), "z2": ("hidden", 1)}, unit_params=UNIT_PARAMS,
    source=Source(train_cell, "w1 = w1 - lr * dw1", GRADS,
                  {"dL_dy": "z3", "dh1": "h1", "dh2": "h2", "dz1": "z1", "dz2": "z2"}),
    kink=Kink(KINK_INIT, "where z1 = w1 x + b1 and z2 = w2 x + b2 hit exactly 0 at x = 1 with nonzero "
              "upstream gradients", sample=0))
