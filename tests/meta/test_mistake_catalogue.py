"""A catalogue of classic mistakes in a hand-written backward, each planted in a user-style
model, and the kind of mistake the tool must name for it (``crosscheck.judging.mistakes``).

The base model: a ReLU layer and a linear layer, 6 samples, 3 inputs, 3 hidden units and
3 outputs, the loss a mean over every output of every sample. Square weights let a
transposed gradient keep its shape; three outputs tell the batch size (6) from the number
of outputs (3). The kind is what the mistake's fingerprint is; "unknown" is said where no
single pattern exists (and the closing note says which).

Each mistake is judged against an exact autograd: the correct model's own run and backward,
standing in for the framework (``helpers.exact_frameworks``). For the forward spelled with
``maximum`` that correct backward is autograd's rule there, derivative 0.5 at a tie (what
torch and JAX give: ``crosscheck.judging.kinks.EXPECTATIONS``, checked by ``tests/test_kinks.py``),
so nothing here moves with a framework's numerics."""

import dataclasses
import re

import numpy as np
import pytest
from helpers import exact_frameworks

import crosscheck
from crosscheck import Model, tolerances
from crosscheck.judging import mistakes

rng = np.random.default_rng(3)
X = rng.normal(size=(6, 3))
Y = rng.normal(size=(6, 3))
# Hidden unit 0 is off on some samples; units 1 and 2 are on for every sample.
INIT = {"W1": rng.normal(size=(3, 3)), "b1": np.array([0.0, 6.0, 6.0]),
        "W2": rng.normal(size=(3, 3)), "b2": np.zeros(3)}
# A start where the first hidden pre-activation is exactly 0 on the samples with x[:, 0] == 1.
X_KINK = np.array([[1.0, 2.0, -1.0], [1.0, -1.0, 0.5], [2.0, 0.5, 1.0], [3.0, 1.0, -2.0],
                   [0.5, -0.5, 2.0], [1.5, 2.5, 0.5]])
INIT_KINK = {"W1": np.eye(3), "b1": np.array([-1.0, 0.5, 0.5]), "W2": rng.normal(size=(3, 3)),
             "b2": np.zeros(3)}


def relu_mask(xp, t):
    return t * (t > 0)


def forward(xp, p, x, tap=lambda n, t: t):
    a = tap("a", x @ p["W1"] + p["b1"])                   # (m, h)
    return relu_mask(xp, a) @ p["W2"] + p["b2"]           # (m, o)


def forward_maximum(xp, p, x, tap=lambda n, t: t):        # derivative 0.5 at exactly 0
    a = tap("a", x @ p["W1"] + p["b1"])
    return xp.maximum(a, 0 * a) @ p["W2"] + p["b2"]


def loss(xp, pred, y):
    return xp.mean((pred - y) ** 2)


def parts(p, x, y, scale=2.0, per=None):
    a = x @ p["W1"] + p["b1"]
    A = a * (a > 0)
    O = A @ p["W2"] + p["b2"]  # noqa: E741 (the documents' name)
    d = scale * (O - y) / (O.size if per is None else per)
    return a, A, d


def right(p, x, y):
    a, A, d = parts(p, x, y)
    da = (d @ p["W2"].T) * (a > 0)
    return {"W1": x.T @ da, "b1": da.sum(0), "W2": A.T @ d, "b2": d.sum(0)}


def with_(**changes):
    """A backward that is ``right`` except for the gradients ``changes`` computes."""
    def backward(p, x, y):
        grads = right(p, x, y)
        return {**grads, **{k: f(p, x, y, grads) for k, f in changes.items()}}
    return backward


def all_(f):
    """A backward whose every gradient is computed from a changed ``d = dL/dO``."""
    def backward(p, x, y):
        a, A, d = f(p, x, y)
        da = (d @ p["W2"].T) * (a > 0)
        return {"W1": x.T @ da, "b1": da.sum(0), "W2": A.T @ d, "b2": d.sum(0)}
    return backward


def stale():
    """Gradients computed at the previous call's parameters (a cache never refreshed in time)."""
    last = {}

    def backward(p, x, y):
        at = last.get("p", p)
        last["p"] = {k: np.array(v) for k, v in p.items()}
        return right(at, x, y)
    return backward


def right_maximum(p, x, y):
    """Autograd's gradient of ``forward_maximum``: at a = 0 exactly, half of it goes to ``a``."""
    a, A, d = parts(p, x, y)
    da = (d @ p["W2"].T) * ((a > 0) + 0.5 * (a == 0))
    return {"W1": x.T @ da, "b1": da.sum(0), "W2": A.T @ d, "b2": d.sum(0)}


#: The correct backward of each forward: what an exact autograd gives.
AUTOGRAD = {forward: right, forward_maximum: right_maximum}


def no_relu_derivative(p, x, y):
    a, A, d = parts(p, x, y)
    da = d @ p["W2"].T                                    # the mask (a > 0) forgotten
    return {"W1": x.T @ da, "b1": da.sum(0), "W2": A.T @ d, "b2": d.sum(0)}


def ge_mask(p, x, y):
    a, A, d = parts(p, x, y)
    da = (d @ p["W2"].T) * (a >= 0)                       # derivative 1 at exactly 0
    return {"W1": x.T @ da, "b1": da.sum(0), "W2": A.T @ d, "b2": d.sum(0)}


def tanh_derivative(p, x, y):
    a, A, d = parts(p, x, y)
    da = (d @ p["W2"].T) * (1 - A ** 2)                   # another activation's derivative
    return {"W1": x.T @ da, "b1": da.sum(0), "W2": A.T @ d, "b2": d.sum(0)}


def update_before_use(p, x, y):
    a, A, d = parts(p, x, y)
    W2 = p["W2"] - 0.05 * (A.T @ d)                       # W2 moved before dL/dA reads it
    da = (d @ W2.T) * (a > 0)
    return {"W1": x.T @ da, "b1": da.sum(0), "W2": A.T @ d, "b2": d.sum(0)}


def narrow(dtype):
    """The right backward computed in ``dtype`` (data and parameters cast with astype), its
    gradients returned as ``dtype`` arrays in a float64 run."""
    def backward(p, x, y):
        return right({k: v.astype(dtype) for k, v in p.items()}, x.astype(dtype), y.astype(dtype))
    return backward


# (id, backward, forward, kink start, expected kind, expected parameter)
CATALOGUE = [
    ("missing-1/m", all_(lambda p, x, y: parts(p, x, y, per=y.shape[1])), forward, False,
     "constant_factor", "W1"),
    ("mse-fp-divides-by-m-only", all_(lambda p, x, y: parts(p, x, y, per=y.shape[0])), forward, False,
     "constant_factor", "W1"),
    ("doubled-factor-2", all_(lambda p, x, y: parts(p, x, y, scale=4.0)), forward, False,
     "constant_factor", "W1"),
    ("dropped-factor-2", all_(lambda p, x, y: parts(p, x, y, scale=1.0)), forward, False,
     "constant_factor", "W1"),
    ("sign-y-minus-O", all_(lambda p, x, y: parts(p, x, y, scale=-2.0)), forward, False, "sign", "W1"),
    ("sign-in-one-gradient", with_(W2=lambda p, x, y, g: -g["W2"]), forward, False, "sign", "W2"),
    ("bias-mean-not-sum", with_(b2=lambda p, x, y, g: g["b2"] / x.shape[0]), forward, False,
     "constant_factor", "b2"),
    ("transposed-product", with_(W1=lambda p, x, y, g: g["W1"].T), forward, False, "transpose", "W1"),
    ("missing-relu-derivative", no_relu_derivative, forward, False, "dead_units", "W1"),
    ("kink-forward-maximum", right, forward_maximum, True, "kink", "W1"),
    ("kink-backward-ge", ge_mask, forward, True, "kink", "W1"),
    ("missing-term-one-element", with_(W1=lambda p, x, y, g: np.where(np.eye(3)[0:1].T @ np.eye(3)[0:1] > 0,
                                                                       0.0, g["W1"])),
     forward, False, "some_elements", "W1"),
    ("extra-term-one-element", with_(b2=lambda p, x, y, g: g["b2"] + np.array([0.0, 0.5, 0.0])), forward,
     False, "some_elements", "b2"),
    ("float32-backward", narrow(np.float32), forward, False, "dtype", "W1"),
    ("float16-backward", narrow(np.float16), forward, False, "dtype", "W1"),
    ("wrong-activation-derivative", tanh_derivative, forward, False, "unknown", "W1"),
    ("update-before-use", update_before_use, forward, False, "unknown", "W1"),
]


@pytest.mark.parametrize("entry", CATALOGUE, ids=[c[0] for c in CATALOGUE])
def test_the_mistake_is_named(entry, monkeypatch):
    name, backward, fwd, kink, kind, param = entry
    model = Model(name=f"catalogue_{name.replace('/', '_')}", x=X_KINK if kink else X, y=Y,
                  init=INIT_KINK if kink else INIT, forward=fwd, loss=loss, backward=backward,
                  lr=0.05, epochs=4, relu=("a",))
    exact_frameworks(monkeypatch, dataclasses.replace(model, name="autograd", backward=AUTOGRAD[fwd]).case)
    first = crosscheck.check(model, frameworks=("torch",)).first_divergence
    assert first is not None and first.question == "local", f"[{name}] not caught: {first}"
    got = first.explanation["kind"] if first.explanation else None
    assert (got, first.parameter) == (kind, param), (
        f"[{name}] expected {kind} on {param}, got {got} on {first.parameter} at step {first.step}: "
        f"{first.explanation}")


def test_a_backward_that_keeps_state_is_refused(monkeypatch):
    # Gradients at the previous call's parameters (a cache refreshed too late): every check
    # evaluates the backward out of order, so such a backward cannot be judged at all.
    model = Model(name="catalogue_stale", x=X, y=Y, init=INIT, forward=forward, loss=loss, backward=stale(),
                  lr=0.05, epochs=4)
    exact_frameworks(monkeypatch, dataclasses.replace(model, name="autograd", backward=right).case)
    with pytest.raises(crosscheck.ModelError, match="keeps state between calls"):
        crosscheck.check(model, frameworks=("torch",))


#: Every reading mistakes.explain gives a factor, as its text names them.
READINGS = ("the batch size", "one over the batch size", "the number of outputs",
            "one over the number of outputs", "a doubled factor 2", "a factor 2 too few")
# id -> (factor, batch size, number of outputs, the readings named, in order)
FACTORS = {
    "2-with-two-outputs": (2.0, 10, 2, ["the number of outputs", "a doubled factor 2"]),
    "2-with-a-batch-of-2": (2.0, 2, 1, ["the batch size", "a doubled factor 2"]),
    "1/2-with-two-outputs": (0.5, 10, 2, ["one over the number of outputs", "a factor 2 too few"]),
    "2-alone": (2.0, 6, 3, ["a doubled factor 2"]),
    "the-batch-size-alone": (16.0, 16, 1, ["the batch size"]),
}


def _readings(text: str) -> list[str]:
    """The readings ``text`` names, in its order ("the batch size" inside "one over the batch
    size" is not one)."""
    at = {r: m.start() for r in READINGS if (m := re.search(r"(?<!one over )" + re.escape(r), text))}
    return sorted(at, key=at.get)


@pytest.mark.parametrize("k,batch,outputs,readings", FACTORS.values(), ids=FACTORS.keys())
def test_a_factor_names_every_reading_that_fits_the_most_specific_first(k, batch, outputs, readings):
    # relu_class --sizes 1,2,2 (docs/explanation/documents.md): manual = 2 x autograd (two outputs).
    autograd = np.array([[0.5, -1.25], [2.0, 3.0]])
    why = mistakes.explain("grad[W1]", k * autograd, autograd, tol=tolerances.STEP_RTOL, batch=batch,
                           outputs=outputs)
    said = _readings(why.text)
    assert (why.kind, said) == ("constant_factor", readings), (
        f"[grad[W1]] manual {k:g} x autograd, batch {batch}, {outputs} outputs: {why.kind}, {why.text!r}; "
        f"expected the readings {readings} in this order")


def test_a_factor_of_1_is_never_named():
    # Manual and autograd differ by 1e-9 relative on every element: too little for a factor.
    autograd = np.array([[0.5, -1.25], [2.0, 3.0]])
    why = mistakes.explain("grad[W1]", autograd * (1 + 1e-9), autograd, tol=tolerances.STEP_RTOL, batch=6,
                           outputs=3)
    assert why.kind != "constant_factor" and "exactly 1x" not in why.text, (
        f"[grad[W1]] manual (1 + 1e-9) x autograd {autograd.tolist()}: {why.kind}, {why.text!r}")


def test_one_element_is_no_evidence_of_a_penalty():
    # A one-element gradient is always some multiple of its penalty's gradient (found calling
    # a 1-element bias's mistake a penalty over the real reading on the other gradients).
    one = np.array([0.3])
    said = (mistakes.penalty_factor("grad[b2]", one * 7, one, np.array([0.01]), tolerances.STEP_RTOL),
            mistakes.own_penalty("grad[b2]", one * 7, one, np.array([0.5]), tolerances.STEP_RTOL))
    assert said == (None, None), f"[grad[b2]] manual 2.1 vs autograd 0.3, one element: read as {said}"


@pytest.mark.parametrize("bound,named", [(5.0, True), (4.37, False)])
def test_one_element_is_a_clip_only_at_a_bound_someone_chooses(bound, named):
    autograd = np.array([[0.5, -7.25], [2.0, 3.0]])
    manual = np.where(np.abs(autograd) > bound, np.sign(autograd) * bound, autograd)
    why = mistakes.clipped("grad[W]", manual, autograd, manual != autograd)
    assert (why is not None and why.kind == "clip") == named, (
        f"[grad[W]] manual {manual.tolist()} vs autograd {autograd.tolist()}: {why}; expected "
        f"{'a clip' if named else 'no reading'} at {bound}")
