"""Every case in torch and JAX agrees with the NumPy reference at every step (float64).

One property per test; each failure names case, framework, step, quantity and parameter.
"""

import numpy as np
import pytest
from conftest import CASES, FRAMEWORKS

from crosscheck import cases, compare, tolerances, transcript

PAIRS = [(c, f) for c in CASES for f in FRAMEWORKS]
IDS = [f"{c}-{f}" for c, f in PAIRS]


@pytest.fixture(scope="module")
def comparisons(runs):
    cache = {}

    def get(case, fw):
        if (case, fw) not in cache:
            cache[case, fw] = compare.compare(runs(case), runs(case, fw))
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


@pytest.mark.parametrize("case,fw", PAIRS, ids=IDS)
def test_dtype_is_float64(case, fw, runs):
    other = runs(case, fw)
    assert other.dtype == "float64", f"[{case}/{fw}] dtype {other.dtype}"
    other.check_dtype()


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


@pytest.mark.parametrize("case,fw", PAIRS, ids=IDS)
def test_activation_masks_identical(case, fw, runs):
    ref, other = runs(case), runs(case, fw)
    assert set(other.masks) == set(ref.masks), f"[{case}/{fw}] masks {set(other.masks)}"
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


@pytest.mark.parametrize("case,fw", PAIRS, ids=IDS)
def test_dead_units_have_exactly_zero_gradients(case, fw, runs):
    # A ReLU unit off on every sample of a step passes no gradient: exactly 0, atol 0.
    traj = runs(case, fw)
    units = cases.get(case).unit_params
    checked = 0
    for mask_name, params in units.items():
        mask = traj.masks[mask_name]
        dead = ~mask.reshape(len(mask), -1).any(axis=1)
        for p in params:
            g = traj.grads[p][dead]
            checked += g.size
            assert np.all(g == tolerances.EXACT), (
                f"[{case}/{fw}] {p}: nonzero gradient at dead-{mask_name} steps "
                f"{np.flatnonzero(dead)[np.flatnonzero((g != 0).reshape(len(g), -1).any(axis=1))][:5]}")
    if case == "sgd_two_relu":
        assert checked == 3 * traj.steps, f"[{case}/{fw}] unit 2 should be dead at every step"


def test_tolerances_stay_under_the_float64_ceiling():
    for c in cases.CASES.values():
        steps = c.ref.problem().steps
        assert tolerances.rtol(steps) <= tolerances.FLOAT64_CEILING, f"[{c.name}] {steps} steps"


@pytest.mark.parametrize("case", CASES)
def test_document_cases_need_no_conditioning_allowance(case, runs):
    # ReLU and identity derivatives are exact: the plain linear-growth bound applies.
    assert cases.get(case).conditioning(runs(case)) == 1.0, f"[{case}]"
