"""The pytest plugin (entry point ``pytest11``): a fixture that keeps a model's reference
trajectory as an npz baseline beside the test, through pytest-regressions.

    def test_my_model_baseline(backprop_baseline):
        backprop_baseline(model)

The first run writes the baseline and fails, as pytest-regressions does; later runs compare
every array of the trajectory within the normwise tolerance the tool's own baselines use
(``crosscheck.reporting.baseline.normwise_tolerances``). ``--force-regen`` rewrites it.
"""

from __future__ import annotations

import pytest


@pytest.fixture
def backprop_baseline(request):
    """``backprop_baseline(model, **overrides)``: the model's reference run (NumPy, its own
    backward) against its baseline ``<test file folder>/<test module>/<test name>.npz``
    (pytest-regressions' place for it)."""
    try:
        ndarrays_regression = request.getfixturevalue("ndarrays_regression")
    except pytest.FixtureLookupError:
        pytest.fail("backprop_baseline needs pytest-regressions: pip install pytest-regressions",
                    pytrace=False)

    def check(model, **overrides):
        from crosscheck.declaring.model import register
        from crosscheck.reporting import baseline

        traj = register(model).run_reference(**overrides)
        arrays = traj.to_arrays()
        ndarrays_regression.check(arrays, tolerances=baseline.normwise_tolerances(arrays, traj.steps))
        return traj

    return check
