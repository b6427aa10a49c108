"""Properties of the reference models and of the trajectory record they fill."""

import numpy as np
import pytest

from crosscheck.declaring import cases
from crosscheck.judging import transcript
from crosscheck.reference import linear_bias, linear_nobias, relu, relu_class, sgd_two_relu
from crosscheck.running.record import Trajectory

CASES = list(cases.CASES)
FULL_BATCH = {"linear_nobias": linear_nobias, "linear_bias": linear_bias, "relu": relu}


@pytest.mark.parametrize("case", CASES)
def test_record_shapes(case, reference_runs):
    t = reference_runs(case)
    for name in cases.get(case).params:
        assert t.params[name].shape[0] == t.steps + 1, f"[{case}] params[{name}] length"
        assert t.grads[name].shape[0] == t.steps, f"[{case}] grads[{name}] length"
        assert t.grads[name].shape[1:] == t.params[name].shape[1:], f"[{case}] {name} shape"
    assert t.steps % t.epochs == 0, f"[{case}] steps {t.steps} not a multiple of epochs {t.epochs}"


@pytest.mark.parametrize("case", CASES)
def test_record_is_float64(case, reference_runs):
    t = reference_runs(case)
    assert t.dtype == "float64", f"[{case}] dtype {t.dtype}"
    t.check_dtype()


@pytest.mark.parametrize("case", CASES)
def test_record_roundtrips_through_arrays(case, reference_runs):
    t = reference_runs(case)
    back = Trajectory.from_arrays(t.to_arrays(), case=t.case, framework=t.framework,
                                  dtype=t.dtype, hyper=t.hyper)
    for k, v in t.to_arrays().items():
        np.testing.assert_array_equal(back.to_arrays()[k], v, err_msg=f"[{case}] {k}")


@pytest.mark.parametrize("case", sorted(FULL_BATCH))
def test_step_loss_is_at_params_before_the_step(case, reference_runs):
    # The record's convention: step_loss[k] and grads[k] are evaluated at params[k].
    mod, t = FULL_BATCH[case], reference_runs(case)
    x, y = mod.data()
    for k in (0, 1, t.steps // 2, t.steps - 1):
        p = {n: v[k] for n, v in t.params.items()}
        out = mod.forward(x, *(p[n] for n in mod.GRADS))[-1]
        assert mod.MSE(y, out) == t.step_loss[k], f"[{case}] step {k}"


def test_relu_class_at_document_sizes_is_the_relu_cell(reference_runs):
    a, b = reference_runs("relu"), reference_runs("relu_class")
    for k, v in a.to_arrays().items():
        np.testing.assert_array_equal(b.to_arrays()[k], v, err_msg=f"[relu_class vs relu] {k}")


def test_sgd_two_relu_printed_run_is_the_second(reference_runs):
    # One execution of the cell does not print the document's numbers; two do.
    one = sgd_two_relu.run(runs=1)
    bad = transcript.mismatches(transcript.compare("sgd_two_relu", sgd_two_relu.transcript(one)))
    assert bad and bad[0].line == 1, "a single run of In [10] should not match the document"
    assert reference_runs("sgd_two_relu").hyper["runs"] == 2


def test_sgd_two_relu_third_run_does_not_match():
    three = sgd_two_relu.run(runs=3)
    bad = transcript.mismatches(transcript.compare("sgd_two_relu", sgd_two_relu.transcript(three)))
    assert bad, "a third run of In [10] should not match the document either"


def test_sgd_two_relu_unit_2_never_learns(reference_runs):
    t = reference_runs("sgd_two_relu")
    for name in ("w2", "b2", "w4"):
        assert np.all(t.grads[name] == 0.0), f"[sgd_two_relu] grad {name} not exactly 0"
        assert np.all(t.params[name] == t.params[name][0]), f"[sgd_two_relu] {name} moved"
    assert not t.masks["z2"].any(), "[sgd_two_relu] z2 > 0 at some step"


def test_linear_nobias_printed_epochs_hide_a_two_cycle(reference_runs):
    loss = reference_runs("linear_nobias").epoch_loss
    assert round(loss[100], 4) == 8.4656 and round(loss[101], 4) == 17.8151, (
        f"[linear_nobias] epochs 100/101 = {loss[100]}, {loss[101]}")


@pytest.mark.parametrize("sizes", [(2, 3, 1), (1, 4, 2), (3, 2, 2)])
def test_relu_class_other_sizes_run(sizes):
    t = relu_class.run(epochs=5, sizes=sizes)
    n, h, o = sizes
    assert t.params["W1"].shape == (6, n, h) and t.params["W2"].shape == (6, h, o)
    assert t.pred_train.shape == (relu_class.SAMPLES, o)
