"""Second opinions: finite differences and the chain rule line by line (ReLU kinks: test_kinks.py)."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from helpers import CASES, FRAMEWORKS, cli, exact_frameworks

from crosscheck import tolerances
from crosscheck.cli import EXIT_MISMATCH, EXIT_OK, EXIT_USAGE, main
from crosscheck.declaring import cases
from crosscheck.declaring.model import load, register
from crosscheck.judging import oracles
from crosscheck.reporting import explain
from crosscheck.running import runner

MODELS = Path(__file__).resolve().parent / "models"
#: A correct three-layer ReLU net with b2[0] exactly at a kink at step 0, and no relu= declared.
DEEP_KINK = str(MODELS / "deep_relu_kink.py")
#: A ReLU net with a unit dead from the start and the ReLU's mask missing from the backward.
DEAD_NO_MASK = str(MODELS / "dead_unit_no_mask.py")


def steps_of(traj):
    s = traj.steps
    return sorted({0, 1, s // 3, 2 * s // 3, s - 1})


@pytest.mark.parametrize("case", CASES)
def test_finite_differences_agree_with_manual_gradients(case, runs):
    traj = runs(case)
    for step in steps_of(traj):
        fds = oracles.finite_differences(traj, step)
        assert {f.parameter for f in fds} == set(traj.param_names), (
            f"[{case}] step {step}: finite differences for {[f.parameter for f in fds]}, "
            f"parameters {traj.param_names}")
        for f in fds:
            assert f.exists, f"[{case}] step {step} {f.parameter}: no finite difference"
            assert f.agree, (f"[{case}] step {step} {f.parameter}: manual {f.manual!r} vs fd {f.fd!r}, "
                             f"|diff| {f.error!r} > tol {f.tol!r}")


def test_finite_differences_catch_a_dropped_factor_2(runs):
    # The oracle can fail: halve one recorded gradient and it must disagree.
    traj = runs("linear_bias")
    broken = type(traj)(**{**traj.__dict__, "grads": {**traj.grads, "b2": traj.grads["b2"] / 2}})
    bad = [f.parameter for f in oracles.finite_differences(broken, 10) if not f.agree]
    assert bad == ["b2"], bad


def test_finite_difference_skips_a_kink_in_reach():
    from crosscheck.reference import relu_class as rc
    traj = rc.run(epochs=1, init=rc.KINK_INIT)
    fd = {f.parameter: f for f in oracles.finite_differences(traj, 0)}
    assert not fd["b1"].exists and not fd["b2"].exists, "a = x - 1 and z = A sit exactly on kinks"


@pytest.mark.parametrize("fw", FRAMEWORKS)
@pytest.mark.parametrize("case", CASES)
def test_every_named_intermediate_gradient_matches_autograd(case, fw, runs):
    traj = runs(case)
    source = cases.get(case).source
    doc_names = set(source.intermediates) | set(source.grads.values())
    assert doc_names, f"[{case}] the reference names no gradient line"
    for step in steps_of(traj)[:4]:
        lines = oracles.chain(traj, step, frameworks=(fw,))
        checked = {line.name for line in lines if line.kind == "gradient"}
        assert checked == doc_names, f"[{case}/{fw}] step {step}: checked {checked}, named {doc_names}"
        for line in lines:
            if line.kind == "gradient":
                err = line.errors()[fw]
                assert err <= tolerances.STEP_RTOL, (
                    f"[{case}/{fw}] step {step} {line.name}: manual {line.manual!r} vs autograd "
                    f"{line.autograd[fw]!r} (normwise {err:.3g})")


def test_chain_rule_lines_follow_the_document_order():
    names = [name for _, name in oracles.backward_lines("relu")]
    assert names == ["dL_dO", "dO_dz", "dL_dz", "dL_db2", "dz_dW2", "dL_dW2", "dz_dA", "dL_dA",
                     "dA_da", "dL_da", "dL_db1", "da_dw1", "dL_dW1"]


@pytest.mark.torch
@pytest.mark.jax
@pytest.mark.parametrize("case", CASES)
def test_explain_view_agrees(case, runs):
    text, ok = explain.render(runs(case), 1)
    assert ok, f"[{case}] explain reports a mismatch:\n{text}"
    for _, name in oracles.backward_lines(case):
        assert f"  {name} = " in text or f"self.{name}" in text, f"[{case}] line {name} missing"


@pytest.mark.torch
@pytest.mark.jax
def test_explain_cli(capsys):
    assert main(["explain", "sgd_two_relu", "--step", "7"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "dz2 = dh2 * relu_derivative(z2)" in out and "verdict  agree" in out and "fd " in out


@pytest.mark.parametrize("argv", [["explain", "relu", "--step", "3000"], ["explain", "relu", "--step", "-1"],
                                  ["explain", "nope"], ["explain", "relu", "--sizes", "2,2,1"]],
                         ids=["step-too-big", "step-negative", "unknown-case", "sizes-not-class"])
def test_explain_bad_input(argv, capsys):
    assert main(argv) == EXIT_USAGE
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def _block(out: str, name: str) -> list[str]:
    """The lines ``explain`` prints under the manual backward line ``name``."""
    lines = out.splitlines()
    start = lines.index(f"  {name} (hand-written)")
    end = next((i for i in range(start + 1, len(lines)) if not lines[i].startswith("      ")), len(lines))
    return lines[start + 1:end]


def test_finite_differences_find_a_kink_no_one_declared():
    # b2[0] sits exactly on a ReLU's kink at step 0; the model declares no relu=, so only the
    # loss's own one-sided slopes can tell: there is no difference there, and everywhere else one
    # that agrees.
    (model,) = load(DEEP_KINK)
    register(model)
    fds = {f.parameter: f for f in oracles.finite_differences(runner.run(model.name), 0)}
    kinked = {(p, tuple(int(i) for i in at)) for p, f in fds.items() for at in np.argwhere(np.isnan(f.fd))}
    assert kinked == {("b2", (0,))}, (
        f"[deep_relu_kink] step 0: no difference at {sorted(kinked)}, expected at b2[0] only")
    for p, f in fds.items():
        assert f.agree, (f"[deep_relu_kink] step 0 {p}: manual {f.manual!r} vs fd {f.fd!r}, "
                         f"|diff| {f.error!r} > tol {f.tol!r}")


@pytest.mark.torch
@pytest.mark.jax
def test_explain_trusts_two_autograds_at_a_kink_no_one_declared(capsys):
    code, out, err = cli(capsys, "explain", DEEP_KINK, "--step", "0")
    assert code == EXIT_OK, (
        f"[deep_relu_kink/torch,jax] explain --step 0: exit {code}, expected {EXIT_OK}\n{out}{err}")
    (fd,) = [line for line in _block(out, "dL/db2") if line.startswith("      fd ")]
    assert "none at (0,): a kink within reach of the step" in fd, (
        f"[deep_relu_kink] step 0 b2[0]: manual 3.25 and autograd 3.25 at a kink, fd line {fd!r}")
    assert out.splitlines()[-1] == "6 of 6 checked lines agree", f"[deep_relu_kink] step 0:\n{out}"


def test_explain_still_calls_a_wrong_gradient_at_a_kink_a_mismatch(monkeypatch):
    # The kink silences the finite difference only where it explains the difference; autograd
    # (here an exact stand-in: the correct model) still judges the wrong line.
    (model,) = load(DEEP_KINK)
    exact_frameworks(monkeypatch, model.case)

    def doubled_b2(p, x, y):
        grads = model.backward(p, x, y)
        return {**grads, "b2": 2 * grads["b2"]}

    wrong = register(dataclasses.replace(model, name="deep_relu_kink_doubled_b2", backward=doubled_b2))
    text, ok = explain.render(runner.run(wrong.name), 0)
    verdict = [line for line in _block(text, "dL/db2") if line.startswith("      verdict ")]
    assert not ok and verdict == ["      verdict  MISMATCH"], (
        f"[{wrong.name}/exact] step 0 b2: manual 2 x [3.25, 1] vs autograd [3.25, 1], {verdict}\n{text}")


def test_explain_lets_two_agreeing_autograds_outvote_finite_differences(monkeypatch):
    # A finite difference that disagrees where torch and JAX (exact stand-ins here) agree with
    # the manual value is shown as a second opinion; it never makes the line MISMATCH.
    (model,) = load(DEEP_KINK)
    exact_frameworks(monkeypatch, model.case)
    register(model)
    honest = oracles.finite_differences

    def off_by_one(traj, step):
        return [dataclasses.replace(f, fd=f.fd + 1, error=np.abs(f.manual - f.fd - 1)) if f.parameter == "W3"
                else f for f in honest(traj, step)]

    monkeypatch.setattr(oracles, "finite_differences", off_by_one)
    text, ok = explain.render(runner.run(model.name), 0)
    block = _block(text, "dL/dW3")
    assert ok and block[-1] == "      verdict  agree", f"[deep_relu_kink/exact] step 0 W3:\n{text}"
    (fd,) = [line for line in block if line.startswith("      fd ")]
    second = "exceeds its tolerance (a second opinion; torch and jax agree with the manual value)"
    assert fd.endswith(second), (
        f"[deep_relu_kink/exact] step 0 W3: manual [10.25, 1.75], fd planted 1 off: {fd!r}")


@pytest.mark.torch
@pytest.mark.jax
def test_explain_shows_a_wrong_gradient_where_autograd_is_exactly_0(capsys):
    # A dead unit's autograd gradient is exactly 0: its error is absolute, not relative.
    code, out, err = cli(capsys, "explain", DEAD_NO_MASK, "--step", "0")
    assert code == EXIT_MISMATCH, (
        f"[dead_unit_no_mask/torch,jax] explain --step 0: exit {code}, expected {EXIT_MISMATCH}\n{out}{err}")
    row = "      at (0, 1): manual 4.125  torch 0  jax 0  abs. err 4.12 (autograd is exactly 0)"
    assert row in _block(out, "dL/dW1"), (
        f"[dead_unit_no_mask/torch,jax] step 0 W1[0, 1]: manual 4.125 vs autograd 0, no row {row!r}\n{out}")
    assert "      likely: dL/dW1 is wrong only in units [1] of a, which are off on some sample" in out, (
        f"[dead_unit_no_mask] step 0 W1: the missing mask is not named as run names it\n{out}")


def _entry(text: str, verdict: str):
    from crosscheck.reporting.explain import Entry

    return Entry(text.split(" =")[0].split(" +=")[0], text, (), verdict)


def test_explain_marks_the_first_wrong_line_and_what_inherits_its_error():
    # dL_dO is wrong; dL_dz and dL_dW2 are computed from it; dL_db1 is not, and is wrong too.
    from crosscheck.reporting.explain import _marked

    lines = [_entry("dL_dO = 2 * (O - y)", "MISMATCH"), _entry("dO_dz = relu_deriv(z)", "local"),
             _entry("dL_dz = dL_dO * dO_dz", "MISMATCH"), _entry("dL_dW2 = A.T @ dL_dz", "MISMATCH"),
             _entry("dL_db1 = np.sum(x)", "MISMATCH"), _entry("dL_db2 = np.sum(dL_dz)", "agree")]
    marks = {e.name: e.mark.split(",")[0].split(":")[0] for e in _marked(lines)}
    want = {"dL_dO": "the first wrong line", "dO_dz": "", "dL_dz": "inherits the error of dL_dO",
            "dL_dW2": "inherits the error of dL_dO", "dL_db1": "wrong on its own", "dL_db2": ""}
    assert marks == want, f"explain's marks {marks}, expected {want}"


def test_explain_leaves_a_line_after_an_unreadable_one_undecided():
    # A line that cannot be read (a continued line) may carry the error on: what follows it is
    # "also wrong, after", never "a second mistake".
    from crosscheck.reporting.explain import _marked

    lines = [_entry("dL_dO = 2 * (O - y)", "MISMATCH"), _entry("dL_dz = (dL_dO *", "MISMATCH"),
             _entry("dL_dW2 = A.T @ dL_dz", "MISMATCH")]
    roles = {e.name: e.role for e in _marked(lines)}
    assert roles == {"dL_dO": "first", "dL_dz": "after", "dL_dW2": "after"}, f"explain's roles {roles}"


def test_explain_counts_a_shared_local_factor_as_the_first_wrong_lines():
    # dL_dz1 is wrong, perhaps through its local factor dA_dz; dL_dz2 reads dA_dz too.
    from crosscheck.reporting.explain import _marked

    lines = [_entry("dA_dz = relu_deriv(z)", "local"), _entry("dL_dz1 = dL_dA * dA_dz", "MISMATCH"),
             _entry("dL_dz2 = dL_dB * dA_dz", "MISMATCH")]
    roles = {e.name: e.role for e in _marked(lines)}
    assert roles == {"dA_dz": "", "dL_dz1": "first", "dL_dz2": "inherits"}, f"explain's roles {roles}"
