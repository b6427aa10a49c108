"""ReLU at exactly 0 (``crosscheck kinks``): each spelling's derivative against the installed
versions' expectations, the models' own forwards at their kink starts, and the exit codes,
with planted changes: a models' ReLU respelled, a derivative that changes in the installed
version, a release without an expectation."""

import functools
import sys

import numpy as np
import pytest
from helpers import CASES, FRAMEWORKS

from crosscheck.cli import EXIT_MISMATCH, EXIT_OK, main
from crosscheck.declaring import cases
from crosscheck.judging import kinks
from crosscheck.running import versions


@functools.cache
def kink_table(fw):
    return kinks.table((fw,))


def kinks_cli(capsys, *args):
    code = main(["kinks", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def maximum(xp, t):        # derivative 0.5 at 0 in torch and JAX
    return xp.maximum(t, 0 * t)


def where_ge(xp, t):       # clamp(min=0)'s convention: derivative 1 at 0
    return xp.where(t >= 0, t, 0 * t)


def plant_models_relu(monkeypatch, spelling, only=None):
    """Respell the models' ReLU (``reference._common.relu``) wherever the reference modules
    hold it, ``ACTIVATIONS`` and a freshly cached ``two_layer`` included; ``only``: in that
    one reference module's forward alone."""
    from crosscheck.reference import _common

    relu, two_layer = _common.relu, _common.two_layer
    fresh = functools.cache(two_layer.__wrapped__)   # its cached forwards hold the old relu
    if only is None:
        monkeypatch.setitem(_common.ACTIVATIONS, "relu", spelling)
    for name, module in list(sys.modules.items()):
        if not name.startswith("crosscheck.reference") or (only is not None and name != only):
            continue
        for attr, value in list(vars(module).items()):
            if value is relu:
                monkeypatch.setattr(module, attr, spelling)
            elif value is two_layer and only is None:
                monkeypatch.setattr(module, attr, fresh)


def installed_as(monkeypatch, **pretend):
    real = versions.installed
    monkeypatch.setattr(versions, "installed", lambda dist: pretend.get(dist) or real(dist))


def torch_relu_at_zero_becomes_half(monkeypatch):
    """torch.relu's derivative at 0 as 0.5 (the issue's simulated convention change)."""
    real = kinks.SPELLINGS["torch"]

    def changed():
        import torch

        return {**real(), "torch.relu(x)": lambda t: torch.maximum(t, torch.zeros_like(t))}

    monkeypatch.setitem(kinks.SPELLINGS, "torch", changed)


# ------------------------------------------------------------------ the expectations, measured
@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_the_installed_version_has_an_expectation(fw):
    version = versions.installed(fw)
    recorded = [str(e) for e in kinks.EXPECTATIONS if e.framework == fw]
    assert kinks.expectation(fw, version) is not None, (
        f"[{fw}] no expectation for the installed {fw} {version}; recorded: {recorded}")


@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_each_spelling_measures_its_expectation(fw):
    rows = [r for r in kink_table(fw) if r.framework == fw]
    expected = kinks.expectation(fw, versions.installed(fw))
    assert expected is not None, f"[{fw}] no expectation for {fw} {versions.installed(fw)}"
    assert {r.spelling for r in rows} == set(expected.at_zero), (
        f"[{fw}] measured spellings {sorted(r.spelling for r in rows)}, expected {sorted(expected.at_zero)}")
    for r in rows:
        assert r.as_expected, (f"[{fw} {r.version}] {r.spelling}: derivative at 0 measured {r.at_zero!r}, "
                               f"expected {r.expected!r} ({expected})")


@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_kink_case_shows_which_spellings_agree(fw):
    for r in kink_table(fw):
        if r.framework == fw:
            assert r.kink_case_agrees == (r.at_zero == kinks.REFERENCE_AT_ZERO), (
                f"[{fw}] {r.spelling}: derivative {r.at_zero!r} at 0, kink case {r.kink_case_text}")


@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_framework_models_use_an_agreeing_spelling(fw):
    (models,) = [r for r in kink_table(fw) if r.framework == fw and r.models]
    assert models.agrees and models.kink_case_agrees, (
        f"[{fw}] the models' {models.spelling}: derivative {models.at_zero!r} at 0, kink case "
        f"{models.kink_case_text}")


@pytest.mark.parametrize(("version", "covered"), [
    ("2.13.0", True), ("2.13.0+cpu", True), ("2.13.1", True), ("2.13.1rc1", True),
    ("2.14.0", False), ("2.14.0.dev20260101", False), ("2.12.9", False), (None, False), ("nightly", False)])
def test_an_expectation_covers_its_release_series_only(version, covered):
    torch = next(e for e in kinks.EXPECTATIONS if e.framework == "torch")
    assert torch.covers(version) == covered, f"{torch} covers {version!r}: {not covered}, expected {covered}"


# ------------------------------------------------------------------ the kink starts
def test_kink_case_really_hits_zero_with_upstream_gradient():
    from crosscheck.reference import relu_class as rc
    model, x, y = rc.build(init=rc.KINK_INIT)
    a, A, z, out = model.forward(x)
    upstream = model.loss_fn.fp(y, out)
    assert np.any((a == 0) & (upstream @ model.W2.T != 0)) and np.any((z == 0) & (upstream != 0))


def test_every_relu_case_declares_a_kink_start():
    relu = [c for c in CASES if cases.get(c).problem().masks]
    missing = [c for c in relu if cases.get(c).kink is None]
    assert relu and not missing, f"ReLU cases {relu}: no kink start declared by {missing}"
    spelling = [c for c in CASES if cases.get(c).kink is not None and cases.get(c).kink.forward_with]
    assert spelling == [kinks.kink_case().name], f"cases declaring forward_with: {spelling}"


@pytest.mark.parametrize("case", [c.name for c in kinks.kink_cases()])
def test_each_kink_start_puts_every_relu_at_exactly_0(case):
    masks = cases.get(case).problem().masks
    assert kinks.zeros_at_start(cases.get(case)) == masks, (
        f"[{case}] exactly 0 at the kink start: {kinks.zeros_at_start(cases.get(case))}, ReLUs {masks}")


@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_the_models_forwards_agree_at_their_kink_starts(fw):
    checks = kinks.models((fw,))
    assert {c.case for c in checks} == {c.name for c in kinks.kink_cases()}, checks
    for c in checks:
        assert c.agrees, f"[{c.case}/{fw}] at the kink start ({c.zeros}): max rel. error {c.error:.3g}"


# ------------------------------------------------------------------ the command and its exit codes
@pytest.mark.torch
@pytest.mark.jax
def test_kinks_exits_0_when_all_is_as_expected(capsys):
    code, out, _ = kinks_cli(capsys)
    assert code == EXIT_OK, f"exit {code}, expected {EXIT_OK}:\n{out}"
    assert "x.clamp(min=0)" in out and "DIFFERS" in out and "agrees" in out, out
    assert "MISMATCH" not in out and "note:" not in out, out
    assert out.rstrip().endswith("the models' forwards keep the reference's derivative 0 at exactly 0."), out


MODEL_PLANTS = [
    # (id, spelling, only this module, the cases that must fail, the models' row wrong)
    ("common-relu-maximum", maximum, None, {"relu", "relu_class", "sgd_two_relu"}, True),
    ("common-relu-clamp", where_ge, None, {"relu", "relu_class", "sgd_two_relu"}, True),
    ("one-forward-maximum", maximum, "crosscheck.reference.sgd_two_relu", {"sgd_two_relu"}, False),
]


@pytest.mark.torch
@pytest.mark.jax
@pytest.mark.parametrize("plant", MODEL_PLANTS, ids=[p[0] for p in MODEL_PLANTS])
def test_a_respelled_models_relu_exits_1_naming_case_and_framework(plant, monkeypatch, capsys):
    name, spelling, only, failing, models_row = plant
    plant_models_relu(monkeypatch, spelling, only)
    code, out, _ = kinks_cli(capsys)
    assert code == EXIT_MISMATCH, f"[{name}] exit {code}, expected {EXIT_MISMATCH}:\n{out}"
    named = {(c, fw) for c in CASES for fw in FRAMEWORKS if f"MISMATCH: {c} in {fw}: " in out}
    assert named == {(c, fw) for c in failing for fw in FRAMEWORKS}, f"[{name}] named {sorted(named)}:\n{out}"
    for fw in FRAMEWORKS:
        said = f"MISMATCH: {fw} {versions.installed(fw)}: the models' ReLU" in out
        assert said == models_row, f"[{name}/{fw}] the models' row named: {said}, not {models_row}:\n{out}"


@pytest.mark.torch
@pytest.mark.parametrize("where", ["measured", "expected"])
def test_a_derivative_off_its_expectation_exits_1_naming_it(where, monkeypatch, capsys):
    # torch.relu's derivative at 0 becomes 0.5 in the installed version, or the record says 0.5.
    if where == "measured":
        torch_relu_at_zero_becomes_half(monkeypatch)
        measured, expected = 0.5, 0
    else:
        record = next(e for e in kinks.EXPECTATIONS if e.framework == "torch")
        changed = type(record)(record.framework, record.versions, record.recorded_with,
                               {**record.at_zero, "torch.relu(x)": 0.5})
        monkeypatch.setattr(kinks, "EXPECTATIONS",
                            tuple(changed if e is record else e for e in kinks.EXPECTATIONS))
        measured, expected = 0, 0.5
    code, out, _ = kinks_cli(capsys, "--framework", "torch")
    assert code == EXIT_MISMATCH, f"[{where}] exit {code}, expected {EXIT_MISMATCH}:\n{out}"
    line = (f"MISMATCH: torch {versions.installed('torch')} torch.relu(x): derivative at 0 measured "
            f"{measured}, expected {expected} (torch ~=2.13.0 (recorded with 2.13.0))")
    assert line in out.splitlines(), f"[{where}] no line {line!r}:\n{out}"
    assert out.count("MISMATCH") == 1, f"[{where}] more than the one change named:\n{out}"


@pytest.mark.torch
def test_a_release_without_an_expectation_is_a_note_not_a_failure(monkeypatch, capsys):
    installed_as(monkeypatch, torch="2.14.1")
    torch_relu_at_zero_becomes_half(monkeypatch)
    code, out, _ = kinks_cli(capsys, "--framework", "torch")
    assert code == EXIT_OK, f"exit {code}, expected {EXIT_OK}:\n{out}"
    note = ("note: no expectation for torch 2.14.1 (last recorded: torch ~=2.13.0 (recorded with 2.13.0)): "
            "differs from it in torch.relu(x) 0.5 (was 0); record it in "
            "crosscheck.judging.kinks.EXPECTATIONS once checked")
    assert note in out.splitlines(), f"no line {note!r}:\n{out}"
    assert "MISMATCH" not in out, out


@pytest.mark.torch
def test_a_release_without_an_expectation_still_fails_on_the_models_spelling(monkeypatch, capsys):
    installed_as(monkeypatch, torch="2.14.1")
    plant_models_relu(monkeypatch, maximum)
    code, out, _ = kinks_cli(capsys, "--framework", "torch")
    assert code == EXIT_MISMATCH, f"exit {code}, expected {EXIT_MISMATCH}:\n{out}"
    assert "note: no expectation for torch 2.14.1" in out, out
    line = "MISMATCH: torch 2.14.1: the models' ReLU (reference._common.relu) has derivative 0.5 at 0"
    assert line in out, f"no line {line!r}:\n{out}"
