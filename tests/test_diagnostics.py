"""What each case's training really does, read from every step, in every implementation."""

import numpy as np
import pytest
from helpers import CASES, FRAMEWORKS, IMPLEMENTATIONS

from crosscheck.declaring import cases
from crosscheck.judging import diagnostics
from crosscheck.running import runner

# Each case's dynamics: (kind, period, cycle values at 4 decimals, settled).
EXPECTED = {
    "linear_nobias": ("oscillating", 2, (8.4656, 17.8151), True),
    "linear_bias": ("converging", 2, (), True),          # converging with a shrinking period-2 swing
    "relu": ("oscillating", 2, (2.7386, 3.8995), False),  # settling toward this 2-cycle
    "relu_class": ("oscillating", 2, (2.7386, 3.8995), False),
    "sgd_linear": ("converging", None, (), True),
    "sgd_two_relu": ("converging", None, (), True),
}
PAIRS = [(c, i) for c in CASES for i in IMPLEMENTATIONS]


@pytest.mark.parametrize("case,impl", PAIRS, ids=[f"{c}-{i}" for c, i in PAIRS])
def test_dynamics(case, impl, runs):
    d = diagnostics.dynamics(runs(case, impl))
    got = (d.kind, d.period, tuple(round(v, 4) for v in d.cycle_losses), d.settled)
    assert got == EXPECTED[case], f"[{case}/{impl}] dynamics {d}"


FRAMEWORK_PAIRS = [(c, f) for c in CASES for f in FRAMEWORKS]   # the reference against itself checks nothing


@pytest.mark.parametrize("case,fw", FRAMEWORK_PAIRS, ids=[f"{c}-{f}" for c, f in FRAMEWORK_PAIRS])
def test_dead_units_are_the_same_in_every_framework(case, fw, runs):
    got, want = (diagnostics.dead_units(runs(case, fw), cases.get(case)),
                 diagnostics.dead_units(runs(case), cases.get(case)))
    assert got == want, f"[{case}/{fw}] dead units {got}, reference {want}"


def test_relu_hidden_unit_dies_on_sample_0_from_step_255(runs):
    assert diagnostics.dead_units(runs("relu"), cases.get("relu")) == [
        {"layer": "hidden", "unit": 0, "name": "a[:, 0]", "samples": [0], "from_step": {"0": 255},
         "always": False}]


def test_sgd_two_relu_unit_2_is_dead_on_every_sample_from_the_start(runs):
    (unit,) = diagnostics.dead_units(runs("sgd_two_relu"), cases.get("sgd_two_relu"))
    assert (unit["name"], unit["samples"], unit["always"]) == ("z2", [0, 1, 2, 3, 4], True)
    assert set(unit["from_step"].values()) == {0, 1, 2, 3, 4}  # each sample's first step


def test_linear_nobias_cycle_is_hidden_by_even_printed_epochs(runs):
    loss = runs("linear_nobias").epoch_loss
    assert np.allclose(loss[100:1000:100], loss[100]) and not np.isclose(loss[101], loss[100])


def test_linear_nobias_minimum_is_too_sharp_for_lr_0_01(runs):
    # Independent derivation: L = c (W1 W2 - 2)^2 with c = mean(x^2) = 28.5; at the
    # balanced minimum W1 = W2 = sqrt(2) the Hessian is 2c [[2, 2], [2, 2]], so
    # lambda_max = 8c = 228 and GD is stable there only for lr < 2 / 228.
    t = runs("linear_nobias")
    s = diagnostics.stability(t, diagnostics.dynamics(t), cases.get(t.case))
    c = np.mean(np.arange(10.0) ** 2)
    at_min = s.points[-1]
    assert at_min["lambda_max"] == pytest.approx(8 * c, rel=1e-6), at_min
    assert s.bound == pytest.approx(2 / (8 * c), rel=1e-6) and s.bound < t.hyper["lr"]
    assert np.allclose(at_min["params"]["W1"], np.sqrt(2), rtol=1e-6)


def test_relu_at_lr_0_1_stalls_with_exactly_zero_gradients():
    t = runner.run("relu", lr=0.1)
    d = diagnostics.dynamics(t)
    assert (d.kind, round(d.final_loss, 6)) == ("stalled", 177.0), d
    assert all(np.all(g[d.start_step:] == 0) for g in t.grads.values())


def test_linear_nobias_at_lr_0_1_diverges():
    d = diagnostics.dynamics(runner.run("linear_nobias", lr=0.1))
    assert d.kind == "diverging" and d.start_step is not None, d


def test_sgd_two_relu_at_lr_0_1_stalls_at_the_epoch_level():
    d = diagnostics.dynamics(runner.run("sgd_two_relu", lr=0.1))
    assert d.kind == "stalled" and d.final_loss > 1, d
