"""``examples/teaching.ipynb``, executed headless as a reader would run it (nbclient and an
IPython kernel): every cell runs, and ``check()``'s rich output shows what the text says."""

import os
import re
import time
from pathlib import Path

import nbformat
import pytest

# Every test here looks at a run of both frameworks.
pytestmark = [pytest.mark.torch, pytest.mark.jax]

NOTEBOOK = Path(__file__).resolve().parent.parent / "examples" / "teaching.ipynb"
#: The notebook is meant to run in well under 30 s; this leaves room for a slower machine.
BUDGET_S = 60


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """(the executed notebook, seconds it took)."""
    from nbclient import NotebookClient

    os.environ.setdefault("JUPYTER_PLATFORM_DIRS", "1")   # jupyter_core's path migration warning
    nb = nbformat.read(NOTEBOOK, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path_factory.mktemp("notebook"))}}).execute()
    return nb, time.perf_counter() - start


def _html(cell) -> str:
    return "".join(o.get("data", {}).get("text/html", "") for o in cell.outputs)


def _checks(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code" and "crosscheck.check(" in c.source]


def test_the_stored_notebook_has_no_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    stored = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and (c.outputs or c.execution_count)]
    assert not stored, f"cells {stored} of {NOTEBOOK.name} keep outputs: strip them before committing"


def test_every_cell_runs_within_the_budget(executed):
    nb, seconds = executed
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors, f"{NOTEBOOK.name}: {errors[0].ename}: {errors[0].evalue}"
    assert seconds < BUDGET_S, f"{NOTEBOOK.name} took {seconds:.1f} s to execute (budget {BUDGET_S} s)"


def test_the_students_relu_network_agrees_with_plots_inline(executed):
    nb, _ = executed
    shown = _html(_checks(nb)[0])
    assert re.search(r"relu_student</b>: <span[^>]*>agree<", shown), f"no agree in the output:\n{shown[:600]}"
    assert shown.count('<img src="data:image/png;base64,') == 2, "the errors and loss plots are not inline"


def test_the_planted_mistake_is_named_where_it_first_shows(executed):
    nb, _ = executed
    shown = _html(_checks(nb)[1])
    assert "MISMATCH (manual backward)" in shown, f"the mistake is not reported:\n{shown[:600]}"
    printed = "".join(o.get("text", "") for c in nb.cells if "first_divergence" in c.source
                      for o in c.outputs)
    assert "manual backward wrong at step 0: grad[W1]" in printed, f"first divergence printed: {printed!r}"


def test_the_stalled_printout_is_a_period_2_cycle(executed):
    nb, _ = executed
    shown = _html(_checks(nb)[2])
    assert "period-2 cycle 8.4656 &lt;-&gt; 17.8151" in shown, f"no cycle in the output:\n{shown[:800]}"
