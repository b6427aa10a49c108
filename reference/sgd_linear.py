"""Per-sample SGD of ``y_pred = w * x + b`` in plain Python, y = 2x.

Document ``002_864d8709852ec334.txt``, cells ``In [1]`` to ``In [4]``.

Quirks of the document, kept as they are:

* Plain Python floats, no NumPy; ``total_loss`` starts as the int ``0``.
* The loss is the per-sample squared error ``error ** 2`` (no mean), and the printed
  ``Loss`` is the *sum* over the epoch's four samples, each taken before its own update.
* The printed ``w`` and ``b`` are the values *after* the epoch, every 10th epoch.
* The parameter update is ``w = w - lr * dw`` (a new float), not in place.
"""

from __future__ import annotations

from crosscheck.declaring.cases import Case, Source
from crosscheck.declaring.problem import Problem, make
from crosscheck.reference._common import Recorder, Trajectory, keep, squared_error

DOCUMENT = "002_864d8709852ec334.txt"
CELL = "first program (In [1] to In [4])"
GRADS = {"w": "dw", "b": "db"}
LR = 0.01
EPOCHS = 100
TEST_DATA = 7


def data() -> tuple[list[int], list[int]]:
    input = [1, 2, 3, 4]
    output = [2, 4, 6, 8]
    return input, output


def init_params():
    w = 0.0
    b = 0.0
    return w, b


def loss_at(params, hyper=None, sample=0):
    """Sample ``sample``'s squared error at ``params``, as the loop computes it."""
    input, output = data()
    x, y = input[sample], output[sample]
    y_pred = params["w"] * x + params["b"]
    error = y_pred - y
    return error ** 2, ()


def problem(lr: float = LR, epochs: int = EPOCHS) -> Problem:
    """Data, the initial values and hyper-parameters, for the framework models."""
    input, output = data()
    init = dict(zip(GRADS, init_params(), strict=True))
    return make("sgd_linear", "sgd", input, output, init,
                {"lr": lr, "epochs": epochs, "test_input": TEST_DATA}, forward_xp, squared_error,
                x_test=[TEST_DATA])


def forward_xp(xp, p, x, tap=keep):
    """The loop's forward for the framework models, once for every array namespace ``xp``."""
    return tap("y_pred", p["w"] * x + p["b"])


def train(w, b, input, output, lr, epochs, rec):
    """The document's two nested loops from ``w, b``, every sample's update recorded."""
    for epoch in range(epochs):
        total_loss = 0
        for x, y in zip(input, output):
            # Forward pass
            y_pred = w * x + b
            error = y_pred - y
            loss = error ** 2
            total_loss += loss

            # Backpropagation
            dw = 2 * (error) * x  #w_grad
            db = 2 * (error)      #b_grad

            # Update weights
            w = w - lr * dw
            b = b - lr * db
            rec.step(loss, {"w": dw, "b": db}, {"w": w, "b": b})
        rec.epoch_loss[epoch] = total_loss
    return w, b


def gradient(params, hyper, sample=0):
    """Sample ``sample``'s loss and manual gradients at ``params``: one pass of the loops."""
    input, output = data()
    rec = Recorder(params, steps=1, epochs=1)
    train(float(params["w"]), float(params["b"]), input[sample:sample + 1], output[sample:sample + 1],
          hyper["lr"], 1, rec)
    return rec.step_loss[0], {k: rec.grads[k][0] for k in GRADS}


def run(lr: float = LR, epochs: int = EPOCHS) -> Trajectory:
    """The document's two nested loops, every sample's update recorded."""
    input, output = data()
    w, b = init_params()
    rec = Recorder({"w": w, "b": b}, steps=epochs * len(input), epochs=epochs)
    w, b = train(w, b, input, output, lr, epochs, rec)

    test_data = TEST_DATA
    predicted = w * test_data + b
    return rec.finish(case="sgd_linear", framework="numpy",
                      hyper={"lr": lr, "epochs": epochs, "test_input": TEST_DATA},
                      pred_train=[w * x + b for x in input], pred_test=[predicted])


def transcript(traj: Trajectory) -> str:
    per_epoch = len(data()[0])
    lines = []
    for epoch in range(0, traj.epochs, 10):
        p = {k: v[(epoch + 1) * per_epoch] for k, v in traj.params.items()}
        lines.append(f'Epoch {epoch}| Loss: {traj.epoch_loss[epoch]:.4f} | '
                     f'w: {p["w"]:.4f} | b: {p["b"]:.4f}')
    lines.append(f"Predicted value for input {TEST_DATA} is {traj.pred_test[0]}")
    return "\n".join(lines)


CASE = Case(
    name="sgd_linear", document=DOCUMENT, cell=CELL, position=1,
    summary="per-sample SGD of w, b from 0 on data 1..4, 100 epochs, prediction at 7",
    params=tuple(GRADS), problem=problem, run_reference=run, gradient=gradient, loss_at=loss_at,
    transcript=transcript, source=Source(train, "w = w - lr * dw", GRADS, {}))
