"""Meta-tests: the cross-check must be able to fail, and must point at the right place.

Each bug is planted in a *copy* of a reference module (its source, edited by one exact
text replacement, executed as a new module). The mutant's trajectory then goes through
the same comparison as the real reference, and the test asserts the first divergence: its
step, quantity and the set of parameters blamed there.

What the mutant is judged against is exact: the unplanted reference's own run, relabelled
as a framework's (``helpers.exactly``), with its manual backward standing in for every
autograd the comparison asks (``helpers.exact_frameworks``). These tests are about the
comparison, so nothing they assert may move with torch's or JAX's numerics; whether the
frameworks agree with the reference is ``tests/test_crosscheck.py``'s question.
"""

import numpy as np
import pytest
from helpers import exact_frameworks, exactly, mutant, run_mutant

from crosscheck.declaring import cases
from crosscheck.judging import compare
from crosscheck.running import runner


def first_dead_step(mask_name, case="relu"):
    mask = runner.run(case).masks[mask_name]
    return int(np.flatnonzero(~mask.reshape(len(mask), -1).all(axis=1))[0])


# (id, case, run overrides, edits, expected step, quantity, blamed parameters)
BUGS = [
    ("dropped-factor-2", "linear_bias", {},
     [("dL_dO = 2 * (O - y) / O.shape[0]", "dL_dO = (O - y) / O.shape[0]")],
     lambda: 0, "grad", {"W1", "b1", "W2", "b2"}),
    ("missing-activation-derivative", "relu", {},
     [("dL_da = dL_dA * dA_da", "dL_da = dL_dA")],
     # x = 0 is the first sample to switch off; its W1 term is x * dL_da = 0, so only b1 shows it.
     lambda: first_dead_step("a"), "grad", {"b1"}),
    ("transposed-product", "relu_class", {"sizes": (2, 2, 1), "epochs": 20},
     [("dL_dW1 = da_dW1.T @ dL_da", "dL_dW1 = (dL_da.T @ da_dW1)")],
     lambda: 0, "grad", {"W1"}),
    ("update-before-gradient", "linear_bias", {},
     [("    dO_dH = W2\n", "    W2 -= lr * dL_dW2\n    dO_dH = W2\n")],
     # W2 moves before dL_dH reads it (dO_dH is W2 itself): W1's and b1's gradients go wrong.
     lambda: 0, "grad", {"W1", "b1"}),
    ("wrong-bias-reduction", "linear_bias", {},
     [("dL_db2 = np.sum(dL_dO)", "dL_db2 = np.mean(dL_dO)")],
     lambda: 0, "grad", {"b2"}),
    ("off-by-one-lr-step", "sgd_linear", {},
     # each update applies the previous step's gradient: step 0 moves nothing.
     [("    for epoch in range(epochs):\n", "    dw_prev = db_prev = 0.0\n    for epoch in range(epochs):\n"),
      ("            w = w - lr * dw\n            b = b - lr * db\n",
       "            w = w - lr * dw_prev\n            b = b - lr * db_prev\n"
       "            dw_prev, db_prev = dw, db\n")],
     lambda: 0, "param", {"w", "b"}),
    # Mistakes in the training loop alone: the backward (the case's gradient) stays right,
    # so only the trajectories can show them, and only if the envelope measures rounding
    # and never the loop's own difference from its backward (compare.envelope; a late
    # factor in the loop: tests/meta/test_no_vacuous_pass.py).
    ("skipped-update", "sgd_linear", {},
     [("            w = w - lr * dw\n            b = b - lr * db\n",
       "            if rec.k != 7:\n                w = w - lr * dw\n                b = b - lr * db\n")],
     lambda: 7, "param", {"w", "b"}),
    ("update-applied-twice", "sgd_linear", {},
     [("            b = b - lr * db\n", "            b = b - lr * db\n            if rec.k == 7:\n"
                                       "                w = w - lr * dw\n")],
     lambda: 7, "param", {"w"}),
]


@pytest.mark.parametrize("bug", BUGS, ids=[b[0] for b in BUGS])
def test_planted_bug_is_caught_at_the_right_place(bug, monkeypatch):
    name, case, overrides, edits, step, quantity, blamed = bug
    exact_frameworks(monkeypatch, cases.get(case))
    copy = mutant(case, *edits)
    planted = run_mutant(copy, **overrides)
    result = compare.compare(planted, exactly(case, **overrides), reference=copy.CASE)
    assert not result.agree, f"[{name}/{case}] planted bug not caught"
    first = result.first
    assert (first.step, first.quantity) == (step(), quantity), (
        f"[{name}/{case}] expected step {step()} {quantity}, got {first}")
    got = {p for q, p in result.blamed() if q == quantity}
    assert got == blamed, f"[{name}/{case}] blamed {got} at step {first.step}, expected {blamed}"


@pytest.mark.parametrize("case", ["linear_bias", "relu", "sgd_linear"])
def test_unplanted_copy_agrees(case, monkeypatch):
    # The mutation machinery itself changes nothing: a copy with a no-op edit agrees.
    exact_frameworks(monkeypatch, cases.get(case))
    copy = mutant(case, ("def run(", "def run("))
    result = compare.compare(run_mutant(copy), exactly(case), reference=copy.CASE)
    assert result.agree, f"[{case}] an unchanged copy does not agree: {result.first}"


def test_transposed_product_is_invisible_at_document_sizes(monkeypatch):
    # A 1x1 transpose is the identity: at (1, 1, 1) this bug cannot show, which is why
    # the meta-test plants it at (2, 2, 1).
    exact_frameworks(monkeypatch, cases.get("relu_class"))
    planted = mutant("relu_class", ("dL_dW1 = da_dW1.T @ dL_da", "dL_dW1 = (dL_da.T @ da_dW1)"))
    result = compare.compare(run_mutant(planted, epochs=50), exactly("relu_class", epochs=50),
                             reference=planted.CASE)
    assert result.agree, f"[transposed-product at (1, 1, 1)] caught: {result.first}"
