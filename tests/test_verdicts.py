"""Verdicts that the dynamics cannot fool: no false mismatch at any learning rate, and a
rounding-sized mistake in a manual gradient still caught at the step and parameter.

The sweep over learning rates, the acceptance test of the first of these, is
tests/test_lr_sweep.py.
"""

import dataclasses

import numpy as np
import pytest
from helpers import CASES, FRAMEWORKS

from crosscheck.declaring import cases
from crosscheck.judging import compare, diagnostics
from crosscheck.reporting import report
from crosscheck.running import runner

#: A relative error this small in one gradient, at step 0, must be caught there.
PLANTED = 1e-13


def _nonzero_at_start(case):
    ref = runner.run(case)
    return [(case, p) for p in ref.param_names if np.any(ref.grads[p][0] != 0)]


PLANTABLE = [cp for case in CASES for cp in _nonzero_at_start(case)]


def _planted(case: str, param: str, ref):
    """The case's reference with ``param``'s manual gradient off by PLANTED (relative), and
    the trajectory such a reference would record."""
    real = cases.get(case)

    def gradient(params, hyper, sample=None):
        loss, grads = real.gradient(params, hyper, sample)
        return loss, {**grads, param: np.asarray(grads[param], np.float64) * (1 + PLANTED)}

    proxy = dataclasses.replace(real, gradient=gradient)
    traj = dataclasses.replace(ref, grads={**ref.grads, param: ref.grads[param] * (1 + PLANTED)})
    return proxy, traj


@pytest.fixture(scope="module")
def planted(runs):
    """``planted(case, param)``: the planted reference, its proxy case and its envelope, once
    for both frameworks (as a run measures the reference's envelope once)."""
    cache = {}

    def get(case, param):
        if (case, param) not in cache:
            proxy, traj = _planted(case, param, runs(case))
            cache[case, param] = proxy, traj, compare.envelope(traj, "float64", proxy)
        return cache[case, param]

    return get


@pytest.mark.parametrize("fw", FRAMEWORKS)
@pytest.mark.parametrize("case,param", PLANTABLE, ids=[f"{c}-{p}" for c, p in PLANTABLE])
def test_a_1e_13_gradient_error_is_caught_at_step_0(case, param, fw, runs, planted):
    proxy, traj, env = planted(case, param)
    c = compare.compare(traj, runs(case, fw), env, reference=proxy)
    first = c.local_first
    assert first is not None, f"[{case}/{fw}] a {PLANTED:g} error in grad[{param}] went unnoticed"
    assert (first.step, first.quantity, first.parameter) == (0, "grad", param), (
        f"[{case}/{fw}] planted in grad[{param}] at step 0, blamed {first}")
    assert c.first.question == "local", f"[{case}/{fw}] {c.first}"


@pytest.mark.torch
@pytest.mark.jax
def test_runs_that_all_overflow_agree_on_a_divergence():
    trajs = {impl: runner.run("relu", impl, lr=1e308) for impl in ("numpy", *FRAMEWORKS)}
    r = report.analyse("relu", trajs)
    assert r.diverging, f"[relu] lr 1e308: {r.dynamics['numpy']}"
    for fw in FRAMEWORKS:
        c = r.comparisons[fw]
        assert r.agree(fw), f"[relu/{fw}] lr 1e308: NaN vs inf vs 0 after the overflow called {c.first}"
        assert c.diverges_at[fw] == c.diverges_at["numpy"], f"[relu/{fw}] {c.diverges_at}"


def test_no_dead_units_are_inferred_from_non_finite_activations():
    t = runner.run("relu", lr=1e308)
    stop = compare.diverges_at(t)
    assert stop is not None and stop <= 1, f"[relu] lr 1e308 leaves the numbers at step {stop}"
    assert diagnostics.dead_units(t, cases.get("relu")) == [], \
        f"[relu] lr 1e308: {diagnostics.dead_units(t, cases.get('relu'))}"
