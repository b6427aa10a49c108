"""What the figures show: the point of failure inside the axes."""

import numpy as np
from matplotlib.figure import Figure

from crosscheck import plots


def test_a_mismatchs_error_at_step_0_is_inside_the_errors_plot(tmp_path, monkeypatch):
    # The planted example's local error is 15 at step 0, past the axis' old top of 10.
    errors = {"envelope": np.full(5, 1e-13), "horizon": None,
              "frameworks": {"torch": {"local": np.array([15.0, 3.0, 2.0, 1.0, 0.5]),
                                       "allowed": np.full(5, 3.6e-15), "global": np.full(5, 0.1)}}}
    shown = []
    save = Figure.savefig

    def keep(fig, *args, **kwargs):
        shown.append(fig.axes[0].get_ylim())
        return save(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    plots.errors_plot(errors, "planted", tmp_path / "errors.png")
    (low, high), = shown
    assert low < 1e-15 and high > 15.0, f"[planted/torch] error 15 at step 0; y axis {low:g} to {high:g}"
