"""Never a false pass, never a crash on bad input: what trying the tool as a new user found
(issue 22), each through the command line or the Python API as a user calls them.

The model files live in ``tests/models/``; each runs in well under a second.
"""

from pathlib import Path

import numpy as np
import pytest
from helpers import cli

import crosscheck
from crosscheck.cli import EXIT_MISMATCH, EXIT_USAGE
from crosscheck.model import Model, load

MODELS = Path(__file__).resolve().parent / "models"
LINE_FIT = str(MODELS / "line_fit.py")


def model(name: str) -> Model:
    (found,) = load(str(MODELS / f"{name}.py"))
    return found


# ---------------------------------------------------------------------------- check()'s arguments
# (keyword, value, the command line's option and text, what the one line says)
BAD_ARGUMENTS = [
    ("lr", float("nan"), ["--lr", "nan"], "lr must be a positive finite number, got nan"),
    ("lr", float("inf"), ["--lr", "inf"], "lr must be a positive finite number, got inf"),
    ("lr", -0.1, ["--lr", "-0.1"], "lr must be a positive finite number, got -0.1"),
    ("epochs", 0, ["--epochs", "0"], "epochs must be a positive integer, got 0"),
    ("epochs", 2.5, ["--epochs", "2.5"], "epochs must be a positive integer, got"),
    ("epochs", "5", None, "epochs must be a positive integer, got '5'"),
]


@pytest.mark.parametrize("keyword, value, option, says", BAD_ARGUMENTS,
                         ids=[f"{a[0]}={a[1]!r}" for a in BAD_ARGUMENTS])
def test_check_refuses_what_the_command_line_refuses(keyword, value, option, says):
    with pytest.raises(ValueError) as caught:
        crosscheck.check(model("line_fit"), **{keyword: value})
    message = str(caught.value)
    assert says in message and "\n" not in message, f"[check({keyword}={value!r})] said {message!r}"


@pytest.mark.parametrize("keyword, value, option, says", [a for a in BAD_ARGUMENTS if a[2]],
                         ids=[f"{a[0]}={a[1]!r}" for a in BAD_ARGUMENTS if a[2]])
def test_the_command_line_says_the_same(capsys, keyword, value, option, says):
    code, out, err = cli(capsys, "run", LINE_FIT, *option)
    assert code == EXIT_USAGE, f"[run {' '.join(option)}] exit {code}: {err}"
    assert err.count("\n") == 1 and says.split(" ", 1)[1] in err, f"[run {' '.join(option)}] said {err!r}"
    assert out == "", f"[run {' '.join(option)}] wrote {out!r}"


@pytest.mark.parametrize("frameworks", [("tensorflow",), (), 3, ["torch", "mxnet"]], ids=repr)
def test_check_names_the_frameworks_it_takes(frameworks):
    with pytest.raises(ValueError, match="frameworks must be one or more of torch, jax"):
        crosscheck.check(model("line_fit"), frameworks=frameworks)


@pytest.mark.torch
def test_a_framework_named_alone_is_that_framework():
    result = crosscheck.check(model("line_fit"), frameworks="torch")
    ran = list(result.verdicts())
    assert ran == ["torch"], f"[line_fit] frameworks='torch' checked {ran}"
    assert result.agree, f"[line_fit/torch] {result.first_divergence}"


# ---------------------------------------------------------------------------- no vacuous pass
@pytest.mark.torch
@pytest.mark.jax
def test_a_nan_manual_gradient_is_a_wrong_manual_gradient_at_its_first_step(cli_json):
    code, report, _ = cli_json(str(MODELS / "nan_gradient.py"))
    assert code == EXIT_MISMATCH, f"[nan_gradient] exit {code}"
    for fw, got in report["cases"]["nan_gradient"]["frameworks"].items():
        first = got["first_divergence"]
        assert got["failed"] == "local", f"[nan_gradient/{fw}] failed {got['failed']!r}: {first}"
        assert (first["step"], first["parameter"]) == (0, "b"), f"[nan_gradient/{fw}] blamed {first}"
        assert first["expected"] == "nan", f"[nan_gradient/{fw}] the manual value {first['expected']!r}"
        assert "NaN" in first["explanation"]["text"], f"[nan_gradient/{fw}] {first['explanation']}"


@pytest.mark.torch
@pytest.mark.jax
def test_a_run_that_compares_no_step_never_agrees(cli_json):
    code, report, _ = cli_json(str(MODELS / "sqrt_at_zero.py"))
    assert code == EXIT_MISMATCH, f"[sqrt_at_zero] exit {code}"
    for fw, got in report["cases"]["sqrt_at_zero"]["frameworks"].items():
        assert not got["agree"] and got["failed"] == "nothing compared", (
            f"[sqrt_at_zero/{fw}] agree {got['agree']}, failed {got['failed']!r}")
        assert got["local"]["steps"] == 0 and not got["local"]["agree"], f"[sqrt_at_zero/{fw}] {got['local']}"


@pytest.mark.torch
def test_a_run_that_compares_no_step_says_so_in_the_table(capsys):
    code, out, _ = cli(capsys, "run", str(MODELS / "sqrt_at_zero.py"), "--framework", "torch")
    row = next(line for line in out.splitlines() if line.startswith("sqrt_at_zero"))
    assert "MISMATCH (nothing compared)" in row and "0.00e+00" not in row, f"[sqrt_at_zero/torch] {row}"


def test_shapes_that_differ_for_a_reason_are_allowed():
    # Class scores (m, C) against integer labels (m,) do not broadcast: the loss means them.
    x, labels = np.eye(3), np.array([0.0, 2.0, 1.0])

    def forward(xp, p, x):
        return x @ p["W"]                                  # (m, C)

    def loss(xp, scores, y):
        picked = xp.sum(scores * (xp.reshape(y, (-1, 1)) == xp.arange(3.0)), axis=1)   # (m,)
        return -xp.mean(picked)

    def backward(p, x, y):
        return {"W": -x.T @ (y[:, None] == np.arange(3.0)) / 3}

    m = Model(name="labels", x=x, y=labels, init={"W": np.zeros((3, 3))}, forward=forward, loss=loss,
              backward=backward, lr=0.1, epochs=2)
    m.validate()   # raises ModelError if the shapes were refused
