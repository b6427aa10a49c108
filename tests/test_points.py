"""``crosscheck.check_gradient``: the manual gradient at points, no training run (as
torch.autograd.gradcheck does), judged as a run's local question judges a step."""

import dataclasses
from pathlib import Path

import pytest
from helpers import cli

import crosscheck
from crosscheck.cli import EXIT_USAGE
from crosscheck.model import load
from crosscheck.testing import assert_gradient_matches

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"

pytestmark = [pytest.mark.torch, pytest.mark.jax]


def example(name: str, **changes):
    (model,) = load(str(EXAMPLES / f"{name}.py"))
    return dataclasses.replace(model, **changes) if changes else model


def test_a_correct_model_agrees_at_every_point_without_lr_or_epochs():
    result = crosscheck.check_gradient(example("tanh_softmax", lr=None, epochs=None), draws=3)
    assert result.agree, f"[tanh_softmax] {result}"
    assert result.points == ("initial values", "draw 1", "draw 2", "draw 3"), result.points
    assert set(result.compared.values()) == {4}, f"[tanh_softmax] compared {result.compared}"


def test_a_wrong_gradient_is_named_at_its_point_and_parameter_with_its_likely_mistake():
    result = crosscheck.check_gradient(example("planted_mistake", lr=None, epochs=None), draws=2)
    first = result.first_divergence
    assert not result.agree and (first.step, first.parameter) == (0, "b"), f"[planted_mistake] {result}"
    said = first.explanation
    assert said["kind"] == "constant_factor" and abs(said["factor"] - 16) < 1e-9, f"[planted_mistake] {said}"
    assert result.verdicts["torch"].startswith("MISMATCH (manual backward) at the initial values: grad[b]")
    with pytest.raises(AssertionError, match=r"\[planted_mistake\] hand-written gradient does not match"):
        assert_gradient_matches(example("planted_mistake"))


def test_a_kink_at_a_point_is_named_as_a_kink():
    first = crosscheck.check_gradient(example("kink_spelling"), draws=0).first_divergence
    assert first is not None and first.explanation["kind"] == "kink", f"[kink_spelling] {first}"


def test_a_model_without_lr_or_epochs_is_refused_a_training_run(capsys, tmp_path):
    with pytest.raises(crosscheck.ModelError, match=r"lr and epochs are needed to check a training run"):
        crosscheck.check(example("tanh_softmax", lr=None, epochs=None))
    source = (EXAMPLES / "planted_mistake.py").read_text().replace("    lr=0.5, epochs=50,\n", "")
    (tmp_path / "no_run.py").write_text(source)
    code, out, err = cli(capsys, "run", str(tmp_path / "no_run.py"))
    assert code == EXIT_USAGE and "lr and epochs are needed" in err, f"exit {code}: {err}"
    code, out, err = cli(capsys, "run", str(tmp_path / "no_run.py"), "--lr", "0.5", "--epochs", "3",
                         "--framework", "torch")
    assert code != EXIT_USAGE and "planted_mistake torch" in out, f"--lr --epochs given: exit {code}: {err}"


@pytest.mark.parametrize("changes, says", [({"draws": -1}, "draws must be"), ({"seed": 1.5}, "seed must be"),
                                           ({"frameworks": "mxnet"}, "frameworks must be")])
def test_bad_arguments_are_one_line(changes, says):
    with pytest.raises(ValueError, match=says):
        crosscheck.check_gradient(example("tanh_softmax"), **changes)


def test_the_result_is_short_in_a_repl():
    shown = repr(crosscheck.check_gradient(example("tanh_softmax"), draws=1))
    assert shown.startswith("GradientResult(model='tanh_softmax', agree=True, points=2"), shown
    assert len(shown) < 200, shown
