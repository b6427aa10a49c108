"""Regression baselines (pytest-regressions ``ndarrays_regression``).

The reference trajectory of every case is stored as ``tests/test_baselines/<case>.npz``;
the reference *and* each framework are checked against that same file, with the
normwise tolerance of ``crosscheck.tolerances``. ``versions.json`` beside them records
what produced them. Only the reference ever writes a baseline: under ``--force-regen``
or ``--regen-all`` the framework checks skip, so torch or JAX numbers can never become
the baseline.

Every baseline problem is reported once, by one test, with the command that fixes it
(``crosscheck.reporting.baseline``); the tests below plant each problem in a copy of the folder.
"""

import json
import re
import shlex
import shutil
import subprocess
import sys

import numpy as np
import pytest
from helpers import CASES, IMPLEMENTATIONS

from crosscheck.reporting import baseline
from crosscheck.running.versions import versions

PAIRS = [(c, f) for c in CASES for f in IMPLEMENTATIONS]


def _regenerating(request):
    return request.config.getoption("force_regen") or request.config.getoption("regen_all")


def _reported_by_the_reference_check(request, case):
    """Whether this session also runs ``[case-numpy]``, which reports an unusable file."""
    node = request.node.nodeid.rsplit("[", 1)[0] + f"[{case}-numpy]"
    return any(item.nodeid == node for item in request.session.items)


@pytest.mark.parametrize("case,fw", PAIRS, ids=[f"{c}-{f}" for c, f in PAIRS])
def test_matches_baseline(case, fw, runs, ndarrays_regression, request):
    directory = request.config.getoption("baseline_dir")
    if _regenerating(request):
        if fw != "numpy":
            pytest.skip("baselines are written from the reference only")
        baseline.write_versions(directory)
        try:
            baseline.load(case, directory)
        except baseline.BaselineError:
            baseline.path(case, directory).unlink(missing_ok=True)  # asked to rewrite an unusable file
        traj = runs(case)
        ndarrays_regression.check(traj.to_arrays(), fullpath=baseline.path(case, directory),
                                  tolerances=baseline.normwise_tolerances(traj.to_arrays(), traj.steps))
        return
    try:
        baseline.load(case, directory)
        unusable = None
    except baseline.BaselineError as e:
        unusable = str(e)
    if unusable and fw != "numpy" and _reported_by_the_reference_check(request, case):
        pytest.skip(f"{baseline.path(case, directory)} is unusable: reported once, by [{case}-numpy]")
    traj = runs(case, fw)
    reference = None
    if fw != "numpy" and not unusable:   # a stale baseline is the reference's change, not fw's
        reference = runs(case).to_arrays()
        if _reported_by_the_reference_check(request, case) and not baseline.reproduces(
                case, reference, traj.steps, ndarrays_regression.check, directory):
            pytest.skip(f"{baseline.path(case, directory)} is stale (the reference no longer reproduces "
                        f"it): reported once, by [{case}-numpy]")
    failure = baseline.verify(case, fw, traj.to_arrays(), traj.steps, ndarrays_regression.check, directory,
                              reference)
    if failure:  # outside any except block: the message is reported once, without a chained copy
        pytest.fail(failure, pytrace=False)


def test_versions_sidecar_names_the_producing_versions(request):
    try:
        made_with = baseline.read_versions(request.config.getoption("baseline_dir"))
        problem = None
    except baseline.BaselineError as e:
        problem = str(e)
    if problem:
        pytest.fail(problem, pytrace=False)
    for key in ("python", "numpy", "torch", "jax"):
        assert made_with.get(key), f"versions.json lacks {key}: {made_with}"


# --- each problem's message, planted in a copy of the baselines -----------------------------

@pytest.fixture
def copy(tmp_path, request):
    """A writable copy of the baselines folder."""
    return shutil.copytree(request.config.getoption("baseline_dir"), tmp_path / "baselines")


@pytest.fixture
def comparing(request):
    """ndarrays_regression compares only when no regen flag is given (with one, it writes)."""
    if _regenerating(request):
        pytest.skip("--force-regen/--regen-all make ndarrays_regression write instead of compare")


def _load_error(case, directory):
    with pytest.raises(baseline.BaselineError) as info:
        baseline.load(case, directory)
    return str(info.value)


def test_missing_baseline_names_the_command_that_writes_it(copy):
    baseline.path("relu", copy).unlink()
    msg = _load_error("relu", copy)
    assert f"{baseline.path('relu', copy)} is missing" in msg, msg
    assert msg.endswith(baseline.regen_command("relu", copy)), msg


def _npz(**arrays):
    def write(p):
        np.savez(p, **arrays)
    return write


CORRUPT = {
    "empty": (lambda p: p.write_bytes(b""), "is empty (0 bytes)"),
    "text": (lambda p: p.write_bytes(b"not a zip\n"),
             "is not an npz (zip) archive: it starts with b'not a zip"),
    "truncated-zip": (lambda p: p.write_bytes(p.read_bytes()[:300]), "is a damaged npz archive"),
    "object-array": (_npz(epoch_loss=np.array([{}], dtype=object)), "holds data that is not a plain array"),
    "arrays-missing": (_npz(epoch_loss=np.zeros(3)),
                       "lacks the arrays ['pred_test', 'pred_train', 'step_loss']"),
}


@pytest.mark.parametrize("plant,expected", CORRUPT.values(), ids=CORRUPT.keys())
def test_corrupt_baseline_says_what_is_wrong_and_how_to_fix_it(copy, plant, expected):
    p = baseline.path("relu", copy)
    plant(p)
    msg = _load_error("relu", copy)
    assert f"baseline {p} {expected}" in msg, f"message {msg!r} should contain {expected!r}"
    assert msg.endswith(f"rewrite it from the reference: {baseline.regen_command('relu', copy)}"), msg
    if expected != CORRUPT["object-array"][1]:
        assert "pickle" not in msg, f"plain garbage blamed on pickled data: {msg!r}"


@pytest.mark.parametrize("content,expected", [(None, "is missing"), ("{", "is unreadable (JSONDecodeError"),
                                              ("[1, 2]", "holds a list, not a mapping")],
                         ids=["missing", "not-json", "not-a-mapping"])
def test_unusable_versions_sidecar_is_one_clear_message(copy, content, expected):
    sidecar = copy / baseline.SIDECAR
    if content is None:
        sidecar.unlink()
    else:
        sidecar.write_text(content, encoding="utf-8")
    with pytest.raises(baseline.BaselineError) as info:
        baseline.read_versions(copy)
    msg = str(info.value)
    want = f"{sidecar} {expected}"
    assert msg.startswith(want), f"message {msg!r} should start with {want!r}"
    assert msg.endswith(baseline.regen_command(None, copy)), msg


def _perturbed(traj, name, step, factor):
    arrays = traj.to_arrays()
    arrays[name] = arrays[name].copy()
    arrays[name][step] *= factor
    return arrays


@pytest.mark.torch
def test_framework_mismatch_never_suggests_regenerating(copy, runs, ndarrays_regression, comparing):
    traj = runs("sgd_linear", "torch")
    msg = baseline.verify("sgd_linear", "torch", _perturbed(traj, "grad.b", 7, 1 + 1e-6), traj.steps,
                          ndarrays_regression.check, copy, runs("sgd_linear").to_arrays())
    assert msg is not None, "a gradient off by 1e-6 at step 7 passed the baseline check"
    assert msg.startswith("[sgd_linear/torch] torch disagrees with the reference's baseline"), msg
    assert "a framework mismatch, not a stale baseline" in msg, msg
    assert "The reference still reproduces it." in msg, f"the reference reproduces it, unsaid: {msg!r}"
    see = shlex.join([sys.executable, "-m", "crosscheck", "run", "sgd_linear", "--framework", "torch"])
    see = f"cd {shlex.quote(str(baseline.ROOT))} && {see}"
    assert see in msg, f"message should name {see!r}: {msg!r}"
    for advice in ("--force-regen", "--regen-all", "regenerate", baseline.regen_command("sgd_linear", copy)):
        assert advice not in msg, f"a framework mismatch suggests {advice!r}: {msg!r}"
    assert "grad.b" in msg, f"message should name the differing array grad.b: {msg!r}"


def test_reference_mismatch_names_the_command_that_rewrites_it(copy, runs, ndarrays_regression, comparing):
    traj = runs("sgd_linear")
    msg = baseline.verify("sgd_linear", "numpy", _perturbed(traj, "grad.b", 7, 1 + 1e-6), traj.steps,
                          ndarrays_regression.check, copy)
    assert msg is not None, "a gradient off by 1e-6 at step 7 passed the baseline check"
    assert msg.startswith("[sgd_linear/numpy] the reference no longer reproduces its baseline"), msg
    assert f"rewrite it from the reference: {baseline.regen_command('sgd_linear', copy)};" in msg, msg
    assert msg.count("--force-regen") == 0 and msg.count("--regen-all") == 1, msg
    assert baseline.load("sgd_linear", copy)["grad.b"][7] == traj.grads["b"][7], "the check rewrote the file"


def _stale(copy, case, name, step, factor):
    """Plant a stale baseline: the copy's ``case`` baseline with one value changed."""
    p = baseline.path(case, copy)
    arrays = baseline.load(case, copy)
    arrays[name] = arrays[name].copy()
    arrays[name][step] *= factor
    np.savez(p, **arrays)


@pytest.mark.jax
def test_stale_baseline_is_the_reference_changing_not_a_framework_mismatch(copy, runs, ndarrays_regression,
                                                                           comparing):
    _stale(copy, "sgd_linear", "step_loss", 3, 2.0)
    traj = runs("sgd_linear", "jax")
    msg = baseline.verify("sgd_linear", "jax", traj.to_arrays(), traj.steps, ndarrays_regression.check, copy,
                          runs("sgd_linear").to_arrays())
    assert msg is not None, "a baseline whose step_loss[3] was doubled passed the check"
    p = baseline.path("sgd_linear", copy)
    want = f"[sgd_linear/jax] the reference changed: its baseline {p} is stale"
    assert msg.startswith(want), f"message should start with {want!r}: {msg!r}"
    assert "framework mismatch" not in msg and "jax disagrees" not in msg, f"jax blamed: {msg!r}"
    assert f"rewrite it from the reference: {baseline.regen_command('sgd_linear', copy)};" in msg, msg


def test_reference_mismatch_names_the_version_drift(copy, runs, ndarrays_regression, comparing):
    made_with = {**versions(), "numpy": "0.0-planted"}
    (copy / baseline.SIDECAR).write_text(json.dumps(made_with), encoding="utf-8")
    traj = runs("sgd_linear")
    msg = baseline.verify("sgd_linear", "numpy", _perturbed(traj, "step_loss", 3, 2.0), traj.steps,
                          ndarrays_regression.check, copy)
    want = f"versions since: numpy 0.0-planted -> {versions()['numpy']}"
    assert msg is not None and want in msg, f"message should contain {want!r}: {msg!r}"


def test_problems_are_reported_once_in_a_real_session_and_the_command_fixes_them(tmp_path):
    # A real pytest session over a copy with a garbage file: one failure that prints the
    # message once (no chained copy), the framework checks of that case skip with a pointer,
    # and the command in the message, run as printed, rewrites the file.
    copy = shutil.copytree(baseline.DIR, tmp_path / "baselines")
    garbage = baseline.path("sgd_linear", copy)
    garbage.write_bytes(b"garbage\n")
    nodes = [f"{baseline.TESTS}::{baseline.TEST}[sgd_linear-{fw}]" for fw in IMPLEMENTATIONS]
    r = subprocess.run([sys.executable, "-m", "pytest", *nodes, "--baseline-dir", str(copy),
                        "-p", "no:cacheprovider", "-q", "-o", "addopts=", "-rs"],
                       capture_output=True, text=True, timeout=300, cwd=baseline.ROOT)
    out = r.stdout + r.stderr
    assert r.returncode == 1, f"exit {r.returncode}, expected 1 (one failure):\n{out}"
    expected = baseline.BaselineError(f"baseline {garbage} is not an npz (zip) archive")
    assert out.count(str(expected)) == 1, f"{str(expected)!r} should appear once:\n{out}"
    for wrong in ("During handling", "pickle", "Traceback"):
        assert wrong not in out, f"{wrong!r} in the report:\n{out}"
    assert "1 failed, 2 skipped" in out.splitlines()[-1], f"expected 1 failed, 2 skipped:\n{out}"
    pointer = f"{garbage} is unusable: reported once, by [sgd_linear-numpy]"
    assert re.search(r"^SKIPPED \[2\] \S+: " + re.escape(pointer), out, re.M), (
        f"both framework checks should skip with {pointer!r}:\n{out}")
    command = baseline.regen_command("sgd_linear", copy)
    assert command in out, f"the exact command {command!r} is not in the report:\n{out}"

    fix = subprocess.run(f"{command} -p no:cacheprovider -q", shell=True,
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert fix.returncode == 0, f"{command} exited {fix.returncode}:\n{fix.stdout}{fix.stderr}"
    rewritten, committed = baseline.load("sgd_linear", copy), baseline.load("sgd_linear")
    for k, v in committed.items():
        np.testing.assert_array_equal(rewritten[k], v, err_msg=f"rewritten sgd_linear baseline, {k}")


def test_a_stale_baseline_fails_once_in_a_real_session(tmp_path):
    # The reference check reports a stale baseline; the framework checks skip with a pointer to it
    # instead of each blaming its framework.
    copy = shutil.copytree(baseline.DIR, tmp_path / "baselines")
    _stale(copy, "sgd_linear", "step_loss", 3, 2.0)
    nodes = [f"{baseline.TESTS}::{baseline.TEST}[sgd_linear-{fw}]" for fw in IMPLEMENTATIONS]
    r = subprocess.run([sys.executable, "-m", "pytest", *nodes, "--baseline-dir", str(copy),
                        "-p", "no:cacheprovider", "-q", "-o", "addopts=", "-rs"],
                       capture_output=True, text=True, timeout=300, cwd=baseline.ROOT)
    out = r.stdout + r.stderr
    assert "1 failed, 2 skipped" in out.splitlines()[-1], f"expected 1 failed, 2 skipped:\n{out}"
    assert "[sgd_linear/numpy] the reference no longer reproduces its baseline" in out, out
    pointer = (f"{baseline.path('sgd_linear', copy)} is stale (the reference no longer reproduces it): "
               "reported once, by [sgd_linear-numpy]")
    assert re.search(r"^SKIPPED \[2\] \S+: " + re.escape(pointer), out, re.M), (
        f"both framework checks should skip with {pointer!r}:\n{out}")


# --- pytest's header -----------------------------------------------------------------------------

def test_header_names_the_baselines_versions_and_the_running_ones(copy):
    now = versions()
    made_with = {**now, "torch": "2.0.0-planted", "jax": "0.4.0-planted", "numpy": "1.0-planted"}
    (copy / baseline.SIDECAR).write_text(json.dumps(made_with), encoding="utf-8")
    line = baseline.header(copy)
    want = (f"crosscheck baselines: made with torch 2.0.0-planted, jax 0.4.0-planted; running torch "
            f"{now['torch']}, jax {now['jax']} (also changed: numpy 1.0-planted -> {now['numpy']})")
    assert line == want, f"header {line!r}, expected {want!r}"


def test_header_says_when_the_baselines_versions_are_unknown(copy):
    (copy / baseline.SIDECAR).unlink()
    line = baseline.header(copy)
    assert line.startswith(f"crosscheck baselines: made with unknown versions ({baseline.SIDECAR} unusable); "
                           f"running torch {versions()['torch']}"), line


def test_the_suite_header_shows_the_baselines_versions():
    r = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-p", "no:cacheprovider",
                        "-o", "addopts=", str(baseline.ROOT / "tests" / "test_readme.py")],
                       capture_output=True, text=True, timeout=300, cwd=baseline.ROOT)
    made_with = baseline.read_versions()
    want = f"crosscheck baselines: made with torch {made_with['torch']}, jax {made_with['jax']}; running"
    assert want in r.stdout, f"pytest's header lacks {want!r}:\n{r.stdout[:3000]}{r.stderr[-2000:]}"
