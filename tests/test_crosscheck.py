"""Every case in torch and JAX agrees with the NumPy reference at every step (float64).

One property per test; each failure names case, framework, step, quantity and parameter.
"""

import importlib
import re

import numpy as np
import pytest
from helpers import CASES, FRAMEWORKS, IMPLEMENTATIONS

from crosscheck import frameworks, tolerances
from crosscheck.declaring import cases
from crosscheck.judging import compare, transcript
from crosscheck.reference import relu_class
from crosscheck.running import runner
from crosscheck.running.record import Trajectory

PAIRS = [(c, f) for c in CASES for f in FRAMEWORKS]
IDS = [f"{c}-{f}" for c, f in PAIRS]


@pytest.fixture(scope="module")
def comparisons(runs):
    cache, envelopes = {}, {}

    def get(case, fw):
        if (case, fw) not in cache:
            if case not in envelopes:   # the reference's, shared by both frameworks (as a run does)
                envelopes[case] = compare.envelope(runs(case))
            cache[case, fw] = compare.compare(runs(case), runs(case, fw), envelopes[case])
        return cache[case, fw]

    return get


def _assert_group(comparison, quantities):
    bad = {q: e for q, e in comparison.per_quantity.items() if q[0] in quantities and e > comparison.tol}
    assert not bad, (f"[{comparison.case}/{comparison.framework}] {comparison.first}; "
                     f"worst errors over tol {comparison.tol:.3g}: {bad}")


@pytest.mark.parametrize("case,fw", PAIRS, ids=IDS)
def test_init_bitwise_identical(case, fw, runs):
    ref, other = runs(case), runs(case, fw)
    for name in ref.param_names:
        a, b = other.params[name][0], ref.params[name][0]
        assert a.dtype == b.dtype and np.array_equal(a, b) and a.tobytes() == b.tobytes(), (
            f"[{case}/{fw}] step 0 {name}: {a!r} vs reference {b!r}")


RAW = [(c, i, d) for c in CASES for i in IMPLEMENTATIONS for d in ("float64", "float32")
       if i != "numpy" or d == "float64"]   # the reference always computes in float64


@pytest.mark.parametrize("case,impl,dtype", RAW, ids=[f"{c}-{i}-{d}" for c, i, d in RAW])
def test_raw_output_has_the_requested_dtype(case, impl, dtype, monkeypatch):
    # Every float array exactly as the implementation produced it: the guard that
    # runner.run and frameworks.train apply is switched off here, so a wrong dtype fails
    # this assertion instead of raising inside the guard. Two epochs show the dtype.
    monkeypatch.setattr(Trajectory, "check_dtype", lambda self: None)
    traj = runner.run(case, impl, dtype, epochs=2)
    assert traj.dtype == dtype, f"[{case}/{impl}] declares {traj.dtype}, requested {dtype}"
    wrong = {k: a.dtype.name for k, a in traj.to_arrays().items() if a.dtype.kind == "f" and a.dtype != dtype}
    assert not wrong, f"[{case}/{impl}] arrays not {dtype}: {wrong}"
    assert any(a.dtype.kind == "f" for a in traj.to_arrays().values()), f"[{case}/{impl}] no float arrays"


@pytest.mark.torch
@pytest.mark.parametrize("array", ["step_loss", "grad.W1", "param.b2", "pred_train"])
def test_dtype_guard_catches_a_float32_array_in_a_float64_run(array, runs, monkeypatch):
    # The guard itself, in the path every framework run takes (frameworks.train).
    ref = runs("relu")
    arrays = {**ref.to_arrays(), array: ref.to_arrays()[array].astype(np.float32)}
    planted = Trajectory.from_arrays(arrays, case="relu", framework="torch", dtype="float64", hyper=ref.hyper)
    module = importlib.import_module("crosscheck.frameworks.torch_models")
    monkeypatch.setattr(module, "train", lambda problem, dtype, *args, **kwargs: planted)
    want = f"[relu/torch] {array} is float32, but the run declares float64"
    with pytest.raises(TypeError, match=re.escape(want)):
        frameworks.train("torch", cases.get("relu").problem())


@pytest.mark.parametrize("case,fw", PAIRS, ids=IDS)
def test_losses_agree(case, fw, comparisons):
    _assert_group(comparisons(case, fw), {"loss", "epoch_loss"})


@pytest.mark.parametrize("case,fw", PAIRS, ids=IDS)
def test_gradients_agree(case, fw, comparisons):
    _assert_group(comparisons(case, fw), {"grad"})


@pytest.mark.parametrize("case,fw", PAIRS, ids=IDS)
def test_parameters_agree(case, fw, comparisons):
    _assert_group(comparisons(case, fw), {"init", "param"})


@pytest.mark.parametrize("case,fw", PAIRS, ids=IDS)
def test_predictions_agree(case, fw, comparisons):
    _assert_group(comparisons(case, fw), {"pred_train", "pred_test"})


MASKED = [(c, f) for c, f in PAIRS if cases.get(c).unit_params]   # the cases with ReLU units


@pytest.mark.parametrize("case,fw", MASKED, ids=[f"{c}-{f}" for c, f in MASKED])
def test_activation_masks_identical(case, fw, runs):
    ref, other = runs(case), runs(case, fw)
    assert ref.masks, f"[{case}] the reference records no ReLU mask"
    assert set(other.masks) == set(ref.masks), f"[{case}/{fw}] masks {set(other.masks)} vs {set(ref.masks)}"
    for name, mask in ref.masks.items():
        diff = np.flatnonzero((other.masks[name] != mask).reshape(len(mask), -1).any(axis=1))
        assert not diff.size, f"[{case}/{fw}] mask {name} differs first at step {diff[:1]}"


@pytest.mark.parametrize("case,fw", PAIRS, ids=IDS)
def test_printed_losses_match_document(case, fw, runs):
    # The document's own numbers, e.g. linear_nobias's 8.4656, in every framework.
    traj = runs(case, fw)
    printed = transcript.printed_losses(case, traj)
    assert printed, f"[{case}] no printed losses found"
    for epoch, text in printed.items():
        assert f"{traj.epoch_loss[epoch]:.4f}" == text, (
            f"[{case}/{fw}] epoch {epoch}: loss {traj.epoch_loss[epoch]:.4f}, document {text}")


# Runs with ReLU units off on every sample of some steps (the document's relu runs have none:
# their hidden unit is off on one sample only). (case, overrides, id)
DEAD = [("sgd_two_relu", {}, "sgd_two_relu"),                       # unit 2 at every step
        ("sgd_two_relu", {"lr": 0.1, "epochs": 10}, "sgd_two_relu-lr0.1"),   # both units
        ("relu", {"lr": 0.1, "epochs": 20}, "relu-lr0.1"),          # whole network from step 3
        ("relu_class", {"lr": 0.1, "epochs": 20}, "relu_class-lr0.1")]
DEAD_PAIRS = [(c, o, i) for c, o, _ in DEAD for i in IMPLEMENTATIONS]


@pytest.mark.parametrize("case,overrides,impl", DEAD_PAIRS,
                         ids=[f"{n}-{i}" for _, _, n in DEAD for i in IMPLEMENTATIONS])
def test_dead_units_have_exactly_zero_gradients(case, overrides, impl, runs):
    # A ReLU unit off on every sample of a step passes no gradient: exactly 0, atol 0.
    traj = runs(case, impl, **overrides)
    checked = 0
    for mask_name, params in cases.get(case).unit_params.items():
        mask = traj.masks[mask_name]
        dead = ~mask.reshape(len(mask), -1).any(axis=1)
        for p in params:
            g = traj.grads[p][dead]
            checked += g.size
            assert np.all(g == tolerances.EXACT), (
                f"[{case} {overrides}/{impl}] {p}: gradient {g[g != 0][:3]} at dead-{mask_name} steps "
                f"{np.flatnonzero(dead)[np.flatnonzero((g != 0).reshape(len(g), -1).any(axis=1))][:5]}, "
                f"expected exactly {tolerances.EXACT}")
    assert checked > 0, f"[{case} {overrides}/{impl}] no step with a dead unit: nothing was checked"
    if (case, overrides) == ("sgd_two_relu", {}):
        assert checked == 3 * traj.steps, (
            f"[{case}/{impl}] {checked} gradient entries checked, expected 3 x {traj.steps}: "
            "unit 2 (w2, b2, w4) should be dead at every step")


def test_tolerances_stay_under_the_float64_ceiling():
    for c in cases.CASES.values():
        steps = c.problem().steps
        assert tolerances.rtol(steps) <= tolerances.FLOAT64_CEILING, f"[{c.name}] {steps} steps"


@pytest.mark.parametrize("case,fw", PAIRS, ids=IDS)
def test_document_cases_need_no_conditioning_allowance(case, fw, runs, comparisons):
    # ReLU and identity derivatives are exact: every error measured in a document run fits
    # the plain linear-growth bound rtol(steps), with no allowance for conditioning.
    plain = tolerances.rtol(runs(case).steps)
    (quantity, worst), = sorted(comparisons(case, fw).per_quantity.items(), key=lambda kv: kv[1])[-1:]
    assert worst <= plain, f"[{case}/{fw}] {quantity}: error {worst:.3g} > plain bound {plain:.3g}"


def test_conditioning_allowance_is_computed_not_defaulted(runs):
    # The class declares how its activations condition rounding: exact for the document's
    # ReLUs (1), but tanh saturates, and the same class then asks for an allowance.
    class_case = cases.get("relu_class")
    assert float(np.max(compare.conditioning(runs("relu_class"), class_case))) == 1.0, (
        "relu,relu at the document's sizes")
    t = relu_class.run(epochs=300, sizes=(2, 3, 1), activations=("tanh", "identity"))
    got = float(np.max(compare.conditioning(t, class_case)))
    assert got > 1, f"[relu_class tanh,identity (2, 3, 1)] conditioning {got}, expected > 1"
