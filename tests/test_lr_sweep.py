"""No false mismatch at any learning rate: the sweep, the acceptance test of the verdicts
that dynamics cannot fool. Learning rates {0.001, ..., 0.1} x every case x both
frameworks, all correct implementations, so every pair must agree (or agree on a
divergence).

The rates are split into two halves, each a class whose runs its tests share (one
class-scoped fixture): pytest-xdist (``--dist loadscope``, as ``make test`` runs it) gives
each half to a worker of its own, where one module-scoped sweep kept one worker busy for
its whole minute.
"""

import pytest
from helpers import CASES, FRAMEWORKS

from crosscheck.reporting import report

LEARNING_RATES = [0.001, 0.003, 0.005, 0.007, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1]


def pytest_generate_tests(metafunc):
    if "lr" in metafunc.fixturenames and metafunc.cls is not None:
        metafunc.parametrize("lr", metafunc.cls.RATES)


@pytest.fixture(scope="class")
def sweep(request):
    """(lr, case) -> the case checked at that learning rate, for the class's rates."""
    results = {}
    with report.Workers(2) as workers:
        for lr in request.cls.RATES:
            for r in report.check_cases(CASES, FRAMEWORKS, workers=workers, lr=lr):
                results[lr, r.case] = r
    return results


@pytest.mark.torch
@pytest.mark.jax
class _Sweep:
    """The tests of every rate; the classes below say which rates (``RATES``)."""

    RATES: tuple[float, ...] = ()

    @pytest.mark.parametrize("fw", FRAMEWORKS)
    @pytest.mark.parametrize("case", CASES)
    def test_no_false_mismatch_at_any_learning_rate(self, lr, case, fw, sweep):
        r = sweep[lr, case]
        c = r.comparisons[fw]
        assert r.agree(fw), (f"[{case}/{fw}] lr {lr}: a correct implementation called wrong: "
                             f"{c.first or 'behaviour'}; horizon {c.horizon}, dynamics "
                             f"{r.dynamics[fw].kind} vs {r.dynamics['numpy'].kind}")
        assert c.local_first is None, f"[{case}/{fw}] lr {lr}: local {c.local_first}"

    def test_relu_and_its_class_twin_get_the_same_verdict(self, lr, sweep):
        # The same function on the same inputs: one may not be chaotic while the other mismatches.
        a, b = sweep[lr, "relu"], sweep[lr, "relu_class"]
        for fw in FRAMEWORKS:
            assert (a.agree(fw), a.comparisons[fw].horizon) == (b.agree(fw), b.comparisons[fw].horizon), (
                f"[relu vs relu_class/{fw}] lr {lr}: {a.agree(fw)}/{a.comparisons[fw].horizon} vs "
                f"{b.agree(fw)}/{b.comparisons[fw].horizon}")


class TestLowerRates(_Sweep):
    RATES = tuple(LEARNING_RATES[:5])


class TestHigherRates(_Sweep):
    RATES = tuple(LEARNING_RATES[5:])

    def test_the_local_question_holds_past_the_predictability_horizon(self, sweep):
        r = sweep[0.02, "relu"]
        for fw in FRAMEWORKS:
            c = r.comparisons[fw]
            assert c.horizon is not None, f"[relu/{fw}] lr 0.02 should be chaotic; envelope {c.tol:.3g}"
            assert c.local_steps == r.reference.steps > c.horizon, (
                f"[relu/{fw}] the local check compared {c.local_steps} steps, horizon {c.horizon}")
