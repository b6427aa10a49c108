"""--dtype float32: torch and JAX in float32 against the float64 reference."""

import json

import pytest
from helpers import CASES, FRAMEWORKS

from crosscheck import tolerances
from crosscheck.cli import EXIT_OK, main
from crosscheck.reporting import report
from crosscheck.running import runner


@pytest.fixture(scope="module")
def f32():
    cache = {}

    def get(case, fw):
        if (case, fw) not in cache:
            cache[case, fw] = runner.run(case, fw, dtype="float32")
        return cache[case, fw]

    return get


@pytest.fixture(scope="module")
def judged(f32, runs):
    """``judged(case, fw)``: the float32 run judged against the float64 reference, once."""
    cache = {}

    def get(case, fw):
        if (case, fw) not in cache:
            cache[case, fw] = report.analyse(case, {"numpy": runs(case), fw: f32(case, fw)}, "float32")
        return cache[case, fw]

    return get


@pytest.mark.parametrize("fw", FRAMEWORKS)
@pytest.mark.parametrize("case", CASES)
def test_float32_really_runs_in_float32(case, fw, f32):
    t = f32(case, fw)
    assert t.dtype == "float32" and t.params[next(iter(t.params))].dtype.name == "float32", f"[{case}/{fw}]"
    t.check_dtype()


@pytest.mark.parametrize("fw", FRAMEWORKS)
@pytest.mark.parametrize("case", CASES)
def test_float32_stays_within_its_derived_bound(case, fw, judged, runs):
    c = judged(case, fw).comparisons[fw]
    # The envelope is measured in float64 and scaled to float32's unit roundoff: it holds at
    # least the linear bound rtol(S, "float32") of a run without amplification.
    linear = tolerances.rtol(runs(case).steps, "float32")
    assert c.tol >= linear, f"[{case}/{fw}] float32 envelope {c.tol:.3g} below the linear bound {linear:.3g}"
    assert c.agree, f"[{case}/{fw}] float32: {c.first}"


@pytest.mark.parametrize("fw", FRAMEWORKS)
@pytest.mark.parametrize("case", CASES)
def test_float32_keeps_the_qualitative_behaviour(case, fw, judged):
    r = judged(case, fw)
    assert r.same_behaviour(fw), (f"[{case}/{fw}] float32 dynamics {r.dynamics[fw]} / dead {r.dead[fw]} vs "
                                  f"float64 {r.dynamics['numpy']} / {r.dead['numpy']}")
    assert r.drift[fw]["first_step_above_1e-3"] is None, f"[{case}/{fw}] drift {r.drift[fw]}"


@pytest.mark.torch
@pytest.mark.jax
def test_float32_cli_reports_drift(capsys):
    assert main(["run", "sgd_two_relu", "--dtype", "float32", "--json", "-", "--jobs", "1"]) == EXIT_OK
    rep = json.loads(capsys.readouterr().out)
    assert rep["dtype"] == "float32"
    for fw in FRAMEWORKS:
        drift = rep["cases"]["sgd_two_relu"]["frameworks"][fw]["drift"]
        assert 0 < drift["max_rel_err"] < tolerances.DRIFT and drift["first_step_above_1e-3"] is None
