"""What the figures show: the point of failure inside the axes, a cycle as its phases."""

import numpy as np
from matplotlib.figure import Figure

from crosscheck.reporting import plots


def _drawn(monkeypatch):
    """The figures saved from now on, as they were when saved."""
    shown = []
    save = Figure.savefig

    def keep(fig, *args, **kwargs):
        fig.canvas.draw()   # tick labels are made when drawn
        shown.append(fig)
        return save(fig, *args, **kwargs)

    monkeypatch.setattr(Figure, "savefig", keep)
    return shown


def test_a_mismatchs_error_at_step_0_is_inside_the_errors_plot(tmp_path, monkeypatch):
    # The planted example's local error is 15 at step 0, past the axis' old top of 10.
    errors = {"envelope": np.full(5, 1e-13), "horizon": None,
              "frameworks": {"torch": {"local": np.array([15.0, 3.0, 2.0, 1.0, 0.5]),
                                       "allowed": np.full(5, 3.6e-15), "global": np.full(5, 0.1)}}}
    shown = _drawn(monkeypatch)
    plots.errors_plot(errors, "planted", tmp_path / "errors.png")
    (low, high), = (fig.axes[0].get_ylim() for fig in shown)
    assert low < 1e-15 and high > 15.0, f"[planted/torch] error 15 at step 0; y axis {low:g} to {high:g}"


def test_a_cycle_is_drawn_one_line_per_phase_with_plain_ticks(tmp_path, monkeypatch):
    # linear_nobias alternates 8.4656 and 17.8151 every epoch: one line is a solid band.
    from crosscheck.running import runner

    shown = _drawn(monkeypatch)
    plots.loss_plot({"numpy": runner.run("linear_nobias")}, {}, tmp_path / "loss.png")
    (fig,) = shown
    ax, zoom = fig.axes
    phases = [line for line in ax.get_lines() if len(line.get_xdata()) == 500]
    assert len(phases) == 2, f"[linear_nobias] period 2: {len(phases)} lines of every second epoch"
    assert sorted(round(float(line.get_ydata()[-1]), 4) for line in phases) == [8.4656, 17.8151], (
        f"[linear_nobias] the phases end at {[line.get_ydata()[-1] for line in phases]}")
    labels = [t.get_text() for axis in (ax, zoom) for t in axis.get_yticklabels(which="both") if t.get_text()]
    assert labels and not [t for t in labels if "times" in t or "^" in t], f"[linear_nobias] ticks {labels}"


def test_a_tolerance_the_frameworks_share_is_drawn_once(tmp_path, monkeypatch):
    same = {"local": np.full(4, 1e-16), "allowed": np.full(4, 3.6e-15), "global": np.full(4, 1e-16)}
    errors = {"envelope": np.full(4, 1e-13), "horizon": None, "frameworks": {"torch": same, "jax": same}}
    shown = _drawn(monkeypatch)
    plots.errors_plot(errors, "shared", tmp_path / "errors.png")
    (fig,) = shown
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    tolerance = [label for label in labels if "tolerance" in label]
    assert tolerance == ["local tolerance (torch, jax)"], f"[shared] tolerance entries {tolerance}"


def test_titles_break_between_clauses_and_every_label_stays_in_the_figure(tmp_path, monkeypatch):
    # Never inside parentheses: "(> 2: unstable; GD needs ...)" is one clause.
    from crosscheck.running import runner

    diagnosis = ("period-2 cycle 8.4656 <-> 17.8151 from epoch 30 (every printed epoch falls on the same "
                 "phase: the printout shows one value); lr*lambda_max = 2.28 at the nearest minimum (> 2: "
                 "unstable; GD needs lr < 0.00877)")
    shown = _drawn(monkeypatch)
    plots.loss_plot({"numpy": runner.run("linear_nobias")}, {}, tmp_path / "loss.png", diagnosis)
    (fig,) = shown
    lines = fig._suptitle.get_text().splitlines()
    want = "lr*lambda_max = 2.28 at the nearest minimum (> 2: unstable; GD needs lr < 0.00877)"
    assert lines[-1] == want, f"[linear_nobias] title lines {lines}"
    box = fig.bbox
    renderer = fig.canvas.get_renderer()
    for text in [fig._suptitle, *(a.xaxis.label for a in fig.axes), *(a.yaxis.label for a in fig.axes)]:
        extent = text.get_window_extent(renderer)
        inside = box.x0 <= extent.x0 and extent.x1 <= box.x1 and box.y0 <= extent.y0 and extent.y1 <= box.y1
        assert inside, f"[linear_nobias] {text.get_text()!r} leaves the figure: {extent} outside {box}"


def test_a_long_runs_parameters_get_the_zoom_panel_and_a_cycle_its_phases(tmp_path, monkeypatch):
    from crosscheck.running import runner

    shown = _drawn(monkeypatch)
    plots.params_plot({"numpy": runner.run("linear_nobias")}, tmp_path / "params.png")
    (fig,) = shown
    ax, zoom = fig.axes
    assert zoom.get_xlabel() == "last 40 steps", f"[linear_nobias] zoom panel: {zoom.get_xlabel()!r}"
    w1 = [line for line in ax.get_lines() if len(line.get_xdata()) in (500, 501)]
    assert len(w1) == 2 * 2, f"[linear_nobias] W1 and W2, period 2: {len(w1)} phase lines"
    labels = [t.get_text() for t in zoom.get_legend().get_texts()]
    assert labels == ["W1", "W2"], f"[linear_nobias] legend {labels}"


def test_a_long_runs_errors_get_the_zoom_panel_of_its_last_steps(tmp_path, monkeypatch):
    n = 300
    fw = {"local": np.full(n, 1e-16), "allowed": np.full(n, 3.6e-15), "global": np.full(n, 1e-15)}
    shown = _drawn(monkeypatch)
    plots.errors_plot({"envelope": np.full(n, 1e-13), "horizon": None, "frameworks": {"torch": fw}}, "long",
                      tmp_path / "errors.png")
    (fig,) = shown
    ax, zoom = fig.axes
    assert zoom.get_xlabel() == "last 40 steps", f"[long] zoom panel {zoom.get_xlabel()!r}"
    assert zoom.get_xlim()[0] >= n - 41, f"[long] the zoom shows steps from {zoom.get_xlim()[0]}"


def test_a_diverging_runs_loss_plot_is_drawn_with_its_labels_inside(tmp_path, monkeypatch):
    # linear_nobias at lr 0.02 reaches 1e286 before inf: a log axis' ticks overflowed there.
    from crosscheck.running import runner

    shown = _drawn(monkeypatch)
    plots.loss_plot({"numpy": runner.run("linear_nobias", lr=0.02)}, {}, tmp_path / "loss.png",
                    "diverging from step 4; non-finite from step 12")
    (fig,) = shown
    renderer, box = fig.canvas.get_renderer(), fig.bbox
    for text in [fig._suptitle, *(a.yaxis.label for a in fig.axes), *fig.axes[0].get_yticklabels()]:
        extent = text.get_window_extent(renderer)
        assert box.x0 <= extent.x0 and extent.x1 <= box.x1, (
            f"[linear_nobias] lr 0.02: {text.get_text()!r} leaves the figure at the side: {extent}")
