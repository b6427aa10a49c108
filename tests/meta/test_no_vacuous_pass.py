"""Meta-tests: every way a check could pass without checking, planted, and none passes.

A false pass is worse than a crash. Each shape below once passed (issue 22): a loss that
is not finite at the initial values with a backward of constants ("diverging alike" from
step 0, nothing compared), ``lr=nan`` hiding a wrong gradient, a backward that returns
NaN, and a mistake in a training loop that the envelope absorbed. The frameworks are the
exact stand-in (``helpers.ExactAutograd``): what is tested is the judging, so these pass
with torch and JAX broken.
"""

from pathlib import Path

import pytest
from helpers import exact_frameworks, exactly, mutant, run_mutant

from crosscheck import check
from crosscheck.declaring import cases
from crosscheck.declaring.model import load
from crosscheck.judging import compare
from crosscheck.testing import assert_backprop_matches

TESTS = Path(__file__).resolve().parent.parent


def user_model(name: str, folder: Path = TESTS / "models"):
    (found,) = load(str(folder / f"{name}.py"))
    return found


def test_a_non_finite_start_with_a_constant_backward_is_refused():
    with pytest.raises(ValueError, match=r"the loss is inf at the initial values \(step 0\)"):
        assert_backprop_matches(user_model("log_of_zero"))


def test_lr_nan_with_a_wrong_backward_is_refused():
    planted = user_model("planted_mistake", TESTS.parent / "examples")   # wrong at step 0
    with pytest.raises(ValueError, match="lr must be a positive finite number, got nan"):
        check(planted, lr=float("nan"))


def test_a_nan_returning_backward_fails_at_step_0_on_its_parameter(monkeypatch):
    correct = user_model("line_fit")   # the same data and start, its backward right
    exact_frameworks(monkeypatch, correct.case)
    with pytest.raises(AssertionError) as caught:
        assert_backprop_matches(user_model("nan_gradient"))
    said = str(caught.value)
    assert "manual backward wrong at step 0: grad[b] manual nan" in said, f"[nan_gradient] {said}"


def test_a_late_mistake_in_the_training_loop_fails_at_its_step(monkeypatch):
    # A 1e-7 factor on one gradient from step 2000, in the loop only (the backward that
    # the local question calls stays right): the trajectories must show it there.
    exact_frameworks(monkeypatch, cases.get("relu"))
    planted = mutant("relu",
                     ("def backward(x, y, W1, b1, W2, b2, a, A, z, O, lr=0.01, tape=None):",
                      "def backward(x, y, W1, b1, W2, b2, a, A, z, O, lr=0.01, tape=None, late=False):"),
                     ("dL_dW1 = da_dw1.T @ (dL_da)  ", "dL_dW1 = da_dw1.T @ (dL_da) * (1 + 1e-7 * late)  "),
                     ("tape=tape)\n", "tape=tape, late=epoch >= 2000)\n"))
    result = compare.compare(run_mutant(planted), exactly("relu"), reference=planted.CASE)
    assert not result.agree, "[relu] a 1e-7 factor in the loop from step 2000 passed"
    first = result.first
    assert (first.step, first.quantity, first.parameter) == (2000, "grad", "W1"), f"[relu] {first}"
