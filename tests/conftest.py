"""Strict test configuration: the document's BLAS kernel selected before NumPy loads,
warnings are errors (pyproject), and float64 really in effect."""

import crosscheck  # noqa: F401  (must come before numpy: selects the BLAS kernel)

# isort: split
import numpy as np
import pytest

from crosscheck import cases


@pytest.fixture(scope="session")
def reference_runs():
    """Each case's reference trajectory, computed once per test session."""
    runs = {}

    def get(name):
        if name not in runs:
            runs[name] = cases.get(name).run_reference()
            runs[name].check_dtype()
        return runs[name]

    return get


@pytest.fixture
def rng():
    return np.random.default_rng(20261122)
