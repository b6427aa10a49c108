"""``crosscheck.check_gradient``: the manual gradient at points, no training run (as
torch.autograd.gradcheck does), judged as a run's local question judges a step."""

import dataclasses
from pathlib import Path

import pytest
from helpers import cli

import crosscheck
from crosscheck.cli import EXIT_MISMATCH, EXIT_USAGE
from crosscheck.declaring.model import load
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
    line = result.verdicts["torch"]
    assert line.startswith("MISMATCH (manual backward) at the initial values: grad[b]"), f"[planted] {line}"
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
    assert code == EXIT_MISMATCH and "planted_mistake torch" in out, f"--lr --epochs: exit {code}: {err}"


@pytest.mark.parametrize("changes, says", [({"draws": -1}, "draws must be"), ({"seed": 1.5}, "seed must be"),
                                           ({"frameworks": "mxnet"}, "frameworks must be")])
def test_bad_arguments_are_one_line(changes, says):
    with pytest.raises(ValueError, match=says):
        crosscheck.check_gradient(example("tanh_softmax"), **changes)


def test_the_result_is_short_in_a_repl():
    shown = repr(crosscheck.check_gradient(example("tanh_softmax"), draws=1))
    assert shown.startswith("GradientResult(model='tanh_softmax', agree=True, points=2"), shown
    assert len(shown) < 200, shown


MODELS = REPO / "tests" / "models"


def model_file(name: str):
    (model,) = load(str(MODELS / f"{name}.py"))
    return model


def test_a_model_trained_per_sample_is_checked_on_every_sample():
    # Right on sample 0 (its unit on), wrong on the others: sample 0 alone would pass it.
    result = crosscheck.check_gradient(model_file("per_sample_missing_mask"), draws=0)
    first = result.first_divergence
    assert not result.agree and first is not None, f"[per_sample_missing_mask] {result}"
    assert result.where(first.step) == "the initial values, sample 1", (
        f"[per_sample_missing_mask] first wrong at {result.where(first.step)}: {first}")


def test_a_draw_outside_the_losss_domain_is_drawn_again_not_failed():
    # Draw 13 of seed 0 makes a rate negative: its log is NaN there, for the correct model too.
    result = crosscheck.check_gradient(model_file("poisson_rate"), draws=15)
    assert result.agree, f"[poisson_rate] a correct model called wrong: {result}"
    assert result.skipped == 1 and "1 draws redrawn" in str(result), f"[poisson_rate] {result}"


def test_where_the_two_autograds_part_the_check_says_so(capsys):
    result = crosscheck.check_gradient(model_file("clip_at_zero"), draws=0)
    said = result.verdicts["torch"]
    assert not result.agree and "autograds part there beyond rounding" in said, f"[clip_at_zero] {said}"
    code, out, err = cli(capsys, "run", str(MODELS / "clip_at_zero.py"), "--jobs", "1")
    assert "autograd part at step 0" in out and "not finite" not in out, f"[clip_at_zero] run:\n{out}"


def test_a_real_loops_points_are_named_by_batch():
    model = load(str(Path(__file__).parent.parent / "examples" / "char_rnn.py"))[0]
    result = crosscheck.check_gradient(model, draws=1)
    assert result.agree and "on all 5 batches" in str(result), f"[char_rnn] {result}"
