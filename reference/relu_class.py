"""The class-based network with pluggable activation and loss objects.

Document ``000_248436dcbf781071.txt``, the ``ReLU``/``MSE`` classes (``In [20]``) and
``LinearRegressionNN`` (the cell after it). At sizes (1, 1, 1) with ReLU/ReLU it is the
``relu`` case written as a class and prints the same numbers.

Quirks of the document, kept as they are:

* ``train`` prints instead of returning anything; here it records into a
  :class:`~crosscheck.running.record.Recorder` and :func:`transcript` prints.
* ``b1`` and ``b2`` are single scalars shared by all units and outputs; ``np.sum``
  over every axis is their correct gradient.
* ``MSE.f`` is ``np.mean`` over all ``m * o`` entries, but ``MSE.fp`` divides by
  ``y_pred.shape[0] = m`` only. For ``o > 1`` outputs the manual gradient is ``o``
  times the gradient of the loss it prints: the code is not consistent with itself
  for those shapes (a documented finding, see docs/explanation/documents.md).
* ``self.a1 = ReLU()`` is the hidden and ``self.a2`` the output activation, as in the
  ``relu`` cell, so the output is clipped at 0.
* The ``In [20]`` cell defines a class named ``MSE`` that shadows the earlier ``MSE``
  function.

Beyond the document, the activations ``Identity``, ``Sigmoid``, ``Tanh`` and ``LeakyReLU``
follow the document's ``f``/``fp`` style, for the property tests over the class.
"""

from __future__ import annotations

import functools

import numpy as np

from crosscheck.declaring.cases import Case, Kink, Option, Source
from crosscheck.declaring.problem import Problem, make
from crosscheck.reference._common import Recorder, Trajectory, epoch_lines, final_block, given, mse, two_layer

DOCUMENT = "000_248436dcbf781071.txt"
CELL = "ReLU/MSE classes (In [20]) and LinearRegressionNN"
GRADS = {"W1": "dL_dW1", "b1": "dL_db1", "W2": "dL_dW2", "b2": "dL_db2"}
#: At the document's sizes, as in ``relu``: pre-activation -> parameters it silences when off.
UNIT_PARAMS = {"a": ("W1", "b1", "W2"), "z": ("W1", "b1", "W2", "b2")}
SEED = 42
LR = 0.01
EPOCHS = 3000
SIZES = (1, 1, 1)
ACTIVATIONS = ("relu", "relu")
SAMPLES = 10


class ReLU:
    def f(self, x):
        return np.maximum(0, x)

    def fp(self, x):
        return (x > 0).astype(float)


class MSE:
    def f(self, y_true, y_pred):
        return np.mean(np.square(y_true - y_pred))

    def fp(self, y_true, y_pred):
        return 2 * (y_pred - y_true) / y_pred.shape[0]


# Activations beyond the document, in its f/fp style.
class Identity:
    def f(self, x):
        return x * 1.0

    def fp(self, x):
        return np.ones_like(x, dtype=float)


class Sigmoid:
    def f(self, x):
        return 1 / (1 + np.exp(-x))

    def fp(self, x):
        s = self.f(x)
        return s * (1 - s)


class Tanh:
    def f(self, x):
        return np.tanh(x)

    def fp(self, x):
        return 1 - np.tanh(x) ** 2


class LeakyReLU:
    slope = 0.01

    def f(self, x):
        return np.where(x > 0, x, self.slope * x)

    def fp(self, x):
        return np.where(x > 0, 1.0, self.slope)


#: Activation names accepted by ``--activations``; lower-case class names.
ACTIVATION_CLASSES = {"relu": ReLU, "identity": Identity, "sigmoid": Sigmoid,
        "tanh": Tanh, "leakyrelu": LeakyReLU}


# Neural Network Class with 1 hidden layer
class LinearRegressionNN:
    def __init__(self, input_shape, hidden_units, output_shape):
        self.W1 = np.random.random(size=(input_shape, hidden_units))
        self.b1 = np.random.random()
        self.W2 = np.random.random(size=(hidden_units, output_shape))
        self.b2 = np.random.random()

        self.a1 = ReLU()
        self.a2 = ReLU()

        self.loss_fn = MSE()

    def set_activation(self, a):
        self.a1 = a[0]
        self.a2 = a[1]

    def set_loss_fn(self, L):
        self.loss_fn = L

    def forward(self, x):
        a = x @ self.W1 + self.b1
        A = self.a1.f(a)
        z = A @ self.W2 + self.b2
        O = self.a2.f(z)
        return a, A, z, O

    # x.shape = (m, n), input_shape = n, hidden_units = h, output_shape = o
    def backward(self, x, y, a, A, z, O, lr=0.01, tape=None):
        dL_dO = self.loss_fn.fp(y, O)       # shape (m, o)
        dO_dz = self.a2.fp(z)               # shape (m, o)
        dL_dz = dO_dz * dL_dO               # shape (m, o)

        dL_db2 = np.sum(dL_dz)

        dz_dW2 = A                          # shape (m, h)
        dL_dW2 = dz_dW2.T @ dL_dz           # shape (h, m) @ (m, o) = (h, o)

        dz_dA = self.W2                     # shape (h, o)
        dL_dA = dL_dz @ dz_dA.T             # shape (m, o) @ (o, h) = (m, h)

        dA_da = self.a1.fp(a)               # shape (m, h)
        dL_da = dL_dA * dA_da               # shape (m, h)

        dL_db1 = np.sum(dL_da)

        da_dW1 = x                          # shape (m, n)
        dL_dW1 = da_dW1.T @ dL_da           # shape (n, m) @ (m, h) = (n, h)

        if tape is not None:
            tape.update(dL_dO=dL_dO, dL_dz=dL_dz, dL_db2=dL_db2, dL_dW2=dL_dW2, dL_dA=dL_dA,
                        dL_da=dL_da, dL_db1=dL_db1, dL_dW1=dL_dW1)

        # Update weights and biases
        self.b2 -= lr * dL_db2
        self.W2 -= lr * dL_dW2
        self.b1 -= lr * dL_db1
        self.W1 -= lr * dL_dW1

    def params(self):
        return {"W1": self.W1, "b1": self.b1, "W2": self.W2, "b2": self.b2}

    def train(self, x, y, epochs=1000, lr=0.01, rec=None):
        for epoch in range(epochs):
            a, A, z, O = self.forward(x)

            loss = self.loss_fn.f(y, O)         # the document prints this when epoch % 100 == 0
            rec.epoch_loss[epoch] = loss

            tape = {}
            self.backward(x, y, a, A, z, O, lr, tape=tape)
            masks = {n: v > 0 for n, v, act in (("a", a, self.a1), ("z", z, self.a2))
                     if isinstance(act, ReLU)}
            rec.step(loss, {p: tape[g] for p, g in GRADS.items()}, self.params(), masks)


def loss_at(params, hyper=None, sample=None):
    """The loss at ``params`` on the case's data, and the ReLU sides (for the oracles)."""
    hyper = hyper or {}
    model, x, y = build(tuple(hyper.get("sizes", SIZES)), tuple(hyper.get("activations", ACTIVATIONS)))
    model.W1, model.b1, model.W2, model.b2 = (params[k] for k in GRADS)
    a, A, z, O = model.forward(x)
    return model.loss_fn.f(y, O), (tuple((a > 0).ravel()), tuple((z > 0).ravel()))


def data(sizes=SIZES):
    """The document's data at its sizes; otherwise drawn from the seeded generator.

    At sizes other than (1, 1, 1) the data is drawn *after* the model's parameters,
    so the parameters keep the document's draw order: ``x = 9 * random((10, n))`` and
    ``y = 2 * x @ ones((n, o)) + 3``, the document's ``y = 2x + 3`` per output.
    """
    n, _, o = sizes
    if tuple(sizes) == SIZES:
        # Goal y = 2x + 3
        x = np.array([np.arange(0, 10)]).T
        y = 2 * x + 3
        return x, y
    x = 9 * np.random.random((SAMPLES, n))
    y = 2 * x @ np.ones((n, o)) + 3
    return x, y


def build(sizes=SIZES, activations=ACTIVATIONS, init=None):
    """Seed, build the model (the document's draws) and its data, as the document does.

    ``init`` (name -> value) replaces the drawn initial values after the draws, for
    hand-set starts such as the integer init of ``crosscheck kinks``.
    """
    np.random.seed(SEED)
    model = LinearRegressionNN(*sizes)
    model.set_activation([ACTIVATION_CLASSES[name]() for name in activations])
    x, y = data(sizes)
    for name, value in (init or {}).items():
        setattr(model, name, np.array(value, float) if np.ndim(value) else float(value))
    return model, x, y


def problem(lr: float = LR, epochs: int = EPOCHS, sizes=SIZES, activations=ACTIVATIONS,
            init=None) -> Problem:
    """Data, the seeded initial draw and hyper-parameters, for the framework models."""
    model, x, y = build(sizes, activations, init)
    masks = tuple(n for n, name in zip(("a", "z"), activations, strict=True) if name == "relu")
    return make("relu_class", "batch", x, y, model.params(), _hyper(lr, epochs, sizes, activations),
                two_layer(tuple(activations)), mse, masks=masks)


def _hyper(lr, epochs, sizes, activations):
    return {"lr": lr, "epochs": epochs, "seed": SEED, "sizes": list(sizes),
            "activations": list(activations)}


def run(lr: float = LR, epochs: int = EPOCHS, sizes=SIZES, activations=ACTIVATIONS,
        init=None) -> Trajectory:
    """``model.train(x, y, epochs=3000)``, every epoch recorded."""
    model, x, y = build(sizes, activations, init)
    m, (_, h, o) = x.shape[0], sizes
    relu_masks = {n: shape for n, shape, name in (("a", (m, h), activations[0]),
                                                  ("z", (m, o), activations[1]))
                  if name == "relu"}
    rec = Recorder(model.params(), steps=epochs, epochs=epochs, masks=relu_masks)
    model.train(x, y, epochs=epochs, lr=lr, rec=rec)
    return rec.finish(case="relu_class", framework="numpy",
                      hyper=_hyper(lr, epochs, sizes, activations),
                      pred_train=model.forward(x)[3])


@functools.cache
def _built(sizes, activations):
    return build(sizes, activations)


def gradient(params, hyper, sample=None):
    """The loss and the manual gradients at ``params``: ``forward``, ``loss_fn.f`` and
    ``backward`` of a model built once per shape, its parameters set to copies of ``params``."""
    model, x, y = _built(tuple(hyper.get("sizes", SIZES)), tuple(hyper.get("activations", ACTIVATIONS)))
    model.W1, model.b1, model.W2, model.b2 = given((), params, GRADS)
    a, A, z, O = model.forward(x)
    tape: dict = {}
    model.backward(x, y, a, A, z, O, hyper["lr"], tape=tape)
    return model.loss_fn.f(y, O), {p: tape[g] for p, g in GRADS.items()}


def class_gradient_bound(x, y, params: dict, outputs) -> dict:
    """:func:`crosscheck.tolerances.two_layer_gradient_bound` for this case's parameters
    (W1, b1, W2, b2) and its forward's ``outputs`` (a, A, z, O), as ``{name: bound}``."""
    from crosscheck.tolerances import two_layer_gradient_bound

    bound = two_layer_gradient_bound(x, y, *(params[k] for k in ("W1", "b1", "W2", "b2")), outputs)
    return dict(zip(("W1", "b1", "W2", "b2"), bound, strict=True))


def conditioning(traj: Trajectory) -> np.ndarray | float:
    """How much each step of this run amplifies rounding, relative to the plain chain of ops.

    Only ``Tanh`` and ``Sigmoid`` need it: ``1 - tanh**2`` and ``s * (1 - s)`` cancel as a
    unit saturates. Every step's running error bound (:func:`class_gradient_bound`,
    the whole run at once) is divided by each gradient's causal scale: per step, a multiple
    of OPS_PER_STEP * u (1 where there is nothing to allow for).
    """
    from crosscheck import tolerances
    from crosscheck.judging import metrics

    acts = tuple(traj.hyper.get("activations", ACTIVATIONS))
    if not {"tanh", "sigmoid"} & set(acts):
        return 1.0
    model, x, y = build(tuple(traj.hyper.get("sizes", SIZES)), acts)
    p = {k: np.asarray(v[:-1], np.float64) for k, v in traj.params.items()}   # before each step
    a = x @ p["W1"] + p["b1"][:, None, None]
    A = model.a1.f(a)
    z = A @ p["W2"] + p["b2"][:, None, None]
    bound = class_gradient_bound(x, y, p, (a, A, z, model.a2.f(z)))
    per_step = np.zeros(traj.steps)
    for k, b in bound.items():
        scale = metrics.causal_scale(traj.grads[k])
        per_step = np.maximum(per_step, b.reshape(traj.steps, -1).max(axis=1) / scale)
    return np.maximum(per_step / (tolerances.OPS_PER_STEP * tolerances.UNIT_ROUNDOFF["float64"]), 1.0)


def transcript(traj: Trajectory) -> str:
    sizes = tuple(traj.hyper.get("sizes", SIZES))
    y = data(sizes)[1] if sizes == SIZES else build(sizes)[2]
    return "\n".join([*epoch_lines(traj), *final_block(traj, y, scalar_biases=True)])


def parse_sizes(text: str) -> tuple[int, int, int]:
    """``--sizes N,H,O``: inputs, hidden units, outputs."""
    parts = text.split(",")
    if len(parts) != 3 or not all(p.strip().isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"{text!r} is not N,H,O (three positive integers)")
    return tuple(int(p) for p in parts)  # type: ignore[return-value]


def parse_activations(text: str) -> tuple[str, str]:
    """``--activations A1,A2``: hidden and output activation names."""
    parts = text.split(",")
    if len(parts) != 2 or not all(p in ACTIVATION_CLASSES for p in parts):
        raise ValueError(f"{text!r} is not A1,A2 with each one of {', '.join(ACTIVATION_CLASSES)}")
    return tuple(parts)  # type: ignore[return-value]


#: A start where both pre-activations hit exactly 0 with nonzero upstream gradients on the
#: documents' data (a = x - 1 at x = 1, z = A): what ``crosscheck kinks`` runs.
KINK_INIT = {"W1": [[1.0]], "b1": -1.0, "W2": [[1.0]], "b2": 0.0}

CASE = Case(
    name="relu_class", document=DOCUMENT, cell=CELL, position=4,
    summary="LinearRegressionNN with pluggable ReLU/MSE objects, sizes (1, 1, 1), 3000 epochs",
    params=tuple(GRADS), problem=problem, run_reference=run, gradient=gradient, loss_at=loss_at,
    transcript=transcript, conditioning=conditioning, reruns=("lr", "epochs", "sizes", "activations"),
    units={"a": ("hidden", 0), "z": ("output", 0)}, unit_params=UNIT_PARAMS,
    source=Source(LinearRegressionNN.backward, "self.b2 -= lr * dL_db2", GRADS,
                  {"dL_dO": "O", "dL_dz": "z", "dL_dA": "A", "dL_da": "a"}),
    options={"sizes": Option(parse_sizes, "N,H,O", "inputs, hidden units, outputs (data then drawn "
                                                   "from the seed)"),
             "activations": Option(parse_activations, "A1,A2",
                                   f"hidden and output activation ({', '.join(ACTIVATION_CLASSES)})")},
    kink=Kink(KINK_INIT, "where a = x - 1 and z = A hit exactly 0 with nonzero upstream gradients",
              forward_with=lambda relu: two_layer((relu, relu))))
