"""Meta-tests for users' models: ``crosscheck.check`` must catch one wrong line in a correct
hand-written backward, at the step and on the parameters where it first matters.

Each mistake is planted in a copy of a correct model's ``backward`` from ``tests/models/``
(its source, edited by one exact text replacement, executed with the original's globals). Where
it must be caught is computed here, without the tool: along the correct training run
(autograd's run, up to rounding), the first step at which the wrong backward and the right
one give different gradients, and the parameters whose gradients differ there.

The tool judges the planted model against an exact autograd: the correct model's own run
and backward in place of every framework (``helpers.exact_frameworks``), so nothing here
moves with torch's or JAX's numerics (that the examples agree with the real frameworks is
``tests/test_models.py``'s question).
"""

import dataclasses
import functools
import inspect
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import blamed_parameters, exact_frameworks, normwise_differ

import crosscheck
from crosscheck.api import Result
from crosscheck.declaring.model import Model, load

MODELS = Path(__file__).resolve().parent.parent / "models"
TANH = str(MODELS / "tanh_regression.py")    # non-square W1 (3, 4); m = h = 4
RELU = str(MODELS / "relu_late.py")          # every unit on until step 6
#: The label of the exact stand-in (a framework name, as check() takes).
FW = "torch"

# (id, the model, the correct line, the line as the mistake has it)
MISTAKES = [
    ("missing-activation-derivative", TANH, "dL_dz1 = dL_dh * (1 - h ** 2)", "dL_dz1 = dL_dh"),
    # W1 is (3, 4): the transposed product is (4, 3), reshaped to fit, so it scrambles values.
    ("transposed-product", TANH, "dL_dW1 = x.T @ dL_dz1", 'dL_dW1 = (dL_dz1.T @ x).reshape(p["W1"].shape)'),
    # (h, k) @ (k, m) is (h, m): the shape of dL_dh only because m = h.
    ("transposed-weights", TANH, 'dL_dh = dL_dpred @ p["W2"].T', 'dL_dh = p["W2"] @ dL_dpred.T'),
    ("wrong-bias-reduction-axis", TANH, "dL_db1 = dL_dz1.sum(axis=0)", "dL_db1 = dL_dz1.sum(axis=1)"),
    ("sign-flip", TANH, "dL_dpred = 2 * (pred - y) / y.size", "dL_dpred = 2 * (y - pred) / y.size"),
    ("sign-flip-one-bias", TANH, "dL_db2 = dL_dpred.sum(axis=0)", "dL_db2 = -dL_dpred.sum(axis=0)"),
    ("dropped-mean", TANH, "dL_dpred = 2 * (pred - y) / y.size", "dL_dpred = 2 * (pred - y)"),
    # Invisible while every unit is on: first shows at step 6, where one unit switches off.
    ("missing-relu-derivative", RELU, "dL_da = dL_dh * (a > 0)", "dL_da = dL_dh"),
]
MISTAKE_IDS = [m[0] for m in MISTAKES]


@functools.cache
def base(path: str) -> Model:
    (model,) = load(path)
    return model


def planted(name: str, path: str, old: str, new: str) -> Model:
    """The model of ``path`` with ``old`` replaced by ``new`` (exactly once) in its backward."""
    model = base(path)
    source = inspect.getsource(model.backward)
    assert source.count(old) == 1, f"[{name}] planted text must occur once in backward: {old!r}"
    namespace = dict(model.backward.__globals__)
    exec(compile(source.replace(old, new), f"<{name} in {path}>", "exec"), namespace)
    return dataclasses.replace(model, name=f"mistake-{name}", backward=namespace["backward"])


def where_it_shows(model: Model, wrong: Callable) -> tuple[int | None, set[str]]:
    """Along the correct run of ``model`` (full batch), the first step where ``wrong`` gives
    other gradients than the model's own backward, and the parameters that differ there."""
    x, y = model.data
    p = {k: v.copy() for k, v in model.params0.items()}
    for step in range(model.epochs):
        right, got = model.backward(p, x, y), wrong(p, x, y)
        differ = {k for k in p if normwise_differ(got[k], right[k])}
        if differ:
            return step, differ
        p = {k: p[k] - model.lr * right[k] for k in p}
    return None, set()


@pytest.fixture(autouse=True)
def exact(monkeypatch):
    """``exact(path)``: the correct model of ``path`` as every framework's autograd."""
    return lambda path: exact_frameworks(monkeypatch, base(path).case)


@functools.cache
def _caught(name: str) -> tuple[Result, int, set[str]]:
    path, old, new = next((path, old, new) for n, path, old, new in MISTAKES if n == name)
    model = planted(name, path, old, new)
    step, differ = where_it_shows(base(path), model.backward)
    assert step is not None, f"[{name}] the mistake never changes a gradient: the test would prove nothing"
    return crosscheck.check(model, frameworks=[FW]), step, differ


def caught(name: str, exact) -> tuple[Result, int, set[str]]:
    """check() of the planted model against its correct model's exact autograd, and where the
    mistake first shows."""
    exact(next(path for n, path, _, _ in MISTAKES if n == name))
    return _caught(name)


@pytest.mark.parametrize("name", MISTAKE_IDS)
def test_mistake_is_caught_at_the_step_it_first_shows(name, exact):
    result, step, differ = caught(name, exact)
    first = result.first_divergence
    assert not result.agree and first is not None, f"[{name}] planted mistake not caught\n{result}"
    assert (first.question, first.quantity, first.step) == ("local", "grad", step), (
        f"[{name}] first divergence {first}; expected the manual gradient at step {step}")
    assert first.parameter in differ, (
        f"[{name}] first divergence names {first.parameter!r}; the mistake changes {sorted(differ)}")


@pytest.mark.parametrize("name", MISTAKE_IDS)
def test_mistake_blames_exactly_the_parameters_it_changes(name, exact):
    result, step, differ = caught(name, exact)
    blamed = blamed_parameters(result.report.comparisons[FW])
    assert blamed == differ, (
        f"[{name}] step {step}: blamed {sorted(blamed)}, the mistake changes {sorted(differ)}")


@pytest.mark.parametrize("path", [TANH, RELU], ids=["tanh_regression", "relu_late"])
def test_unplanted_copy_agrees(path, exact):
    # The planting machinery itself changes nothing: a copy with a no-op edit agrees.
    exact(path)
    model = planted("no-op", path, "def backward(", "def backward(")
    result = crosscheck.check(model)
    assert result.agree, f"[{model.name}] an unchanged copy of the backward does not agree\n{result}"


def test_transposed_product_without_reshape_is_a_shape_error(exact):
    # In a non-square layer a bare transposed product has the wrong shape: it is refused
    # before any run, naming the parameter and both shapes.
    exact(TANH)
    model = planted("bare-transpose", TANH, "dL_dW1 = x.T @ dL_dz1", "dL_dW1 = dL_dz1.T @ x")
    with pytest.raises(crosscheck.ModelError) as refused:
        crosscheck.check(model)
    message = str(refused.value)
    shapes = (str(base(TANH).params0["W1"].shape[::-1]), str(base(TANH).params0["W1"].shape))
    assert all(s in message for s in ("'W1'", *shapes)), f"[{model.name}] ModelError: {message!r}"


def test_relu_mistake_first_shows_after_step_0():
    # So that "caught at the step it first shows" is not always step 0.
    model = planted("missing-relu-derivative", RELU, "dL_da = dL_dh * (a > 0)", "dL_da = dL_dh")
    step, differ = where_it_shows(base(RELU), model.backward)
    assert step is not None and step > 0, f"[{model.name}] first shows at step {step}, expected a later step"
