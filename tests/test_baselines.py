"""Regression baselines (pytest-regressions ``ndarrays_regression``).

The reference trajectory of every case is stored as ``tests/test_baselines/<case>.npz``;
the reference *and* each framework are checked against that same file, with the
normwise tolerance of ``crosscheck.tolerances``. ``versions.json`` beside them records
what produced them. Only the reference ever writes a baseline: under ``--force-regen``
or ``--regen-all`` the framework checks skip, so torch or JAX numbers can never become
the baseline.
"""

import pytest
from conftest import CASES, IMPLEMENTATIONS

from crosscheck import baseline
from crosscheck.versions import versions

PAIRS = [(c, f) for c in CASES for f in IMPLEMENTATIONS]


def _regenerating(request):
    return request.config.getoption("force_regen") or request.config.getoption("regen_all")


@pytest.mark.parametrize("case,fw", PAIRS, ids=[f"{c}-{f}" for c, f in PAIRS])
def test_matches_baseline(case, fw, runs, ndarrays_regression, request):
    traj = runs(case, fw)
    if fw != "numpy" and _regenerating(request):
        pytest.skip("baselines are written from the reference only")
    if fw == "numpy" and _regenerating(request):
        baseline.write_versions()
        if baseline.path(case).exists():
            try:
                baseline.load(case)
            except baseline.BaselineError:
                baseline.path(case).unlink()  # asked to regenerate: replace the unreadable file
    else:
        try:
            expected = baseline.load(case)
        except baseline.BaselineError as e:
            pytest.fail(f"[{case}/{fw}] {e}", pytrace=False)
        made_with = baseline.read_versions() or {}
        now = versions()
        drift = {k: (made_with.get(k), v) for k, v in now.items() if made_with.get(k) != v}
        request.node.user_properties.append(("version_drift", drift))
    ndarrays_regression.check(
        traj.to_arrays(), basename=case,
        tolerances=baseline.normwise_tolerances(traj.to_arrays() if fw == "numpy" else expected,
                                                traj.steps))


def test_versions_sidecar_names_the_producing_versions():
    made_with = baseline.read_versions()
    assert made_with is not None, f"{baseline.DIR / baseline.SIDECAR} missing or unreadable"
    for key in ("python", "numpy", "torch", "jax"):
        assert made_with.get(key), f"versions.json lacks {key}: {made_with}"


def test_missing_baseline_is_a_clear_error(tmp_path):
    with pytest.raises(baseline.BaselineError, match="missing"):
        baseline.load("relu", tmp_path)


@pytest.mark.parametrize("content", [b"", b"not a zip", b"PK\x03\x04garbage"],
                         ids=["empty", "text", "truncated-zip"])
def test_corrupt_baseline_is_a_clear_error(tmp_path, content):
    baseline.path("relu", tmp_path).write_bytes(content)
    with pytest.raises(baseline.BaselineError, match="corrupt"):
        baseline.load("relu", tmp_path)
