"""Plots of what the printed epochs hide (matplotlib, Agg, no display needed).

For each case:

* ``<case>_errors.png``: how far each framework is from the reference at every step, on a
  log scale: the local question's error (the manual backward against autograd at the
  framework's own parameters) under its tolerance, and the trajectories' difference under
  the envelope, with the predictability horizon marked. Three overlaid loss curves cannot
  show agreement; this can.
* ``<case>_loss.png``: the full per-epoch loss of every implementation, with the epochs
  the document printed marked (a printed 0.0000 too, at the bottom of a log axis), and the
  last epochs zoomed.
* ``<case>_params.png``: every parameter at every step (up to ``LINES`` values of each
  tensor), the reference as lines and each framework as its own markers.

Legends sit beside the axes and the figures are cut to their contents, so no label is
clipped and no legend covers data.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from crosscheck.frameworks.registry import REGISTRY
from crosscheck.running.record import Trajectory

STYLE = {"numpy": dict(color="black", lw=2.2, ls="-", alpha=0.55),
         **{fw.name: dict(fw.style) for fw in REGISTRY.values()}}
#: Markers of the frameworks in the parameter plot (the reference is drawn as lines).
MARKERS = {fw.name: fw.marker for fw in REGISTRY.values()}
#: Epochs shown in the zoom panel of the loss plot; framework markers per parameter curve.
ZOOM = 40
MARKS = 25
#: Values drawn of one parameter tensor, evenly spread over it: a model of thousands of
#: weights would draw thousands of lines (12 210 at relu_class --sizes 50,200,10) and show
#: nothing; its errors plot covers every value.
LINES = 8


def _figure(ncols: int = 1, width: float = 8.0, ratios=None, right: float = 0.98, bottom: float = 0.11):
    """A figure with fixed margins, room for the y label on the left and, given ``right`` or
    ``bottom``, for a legend beside or below the axes: a tight bounding box or a constrained
    layout would draw every figure twice (half the plots' cost), to the same effect."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, 4.6), dpi=100)
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=0.8 / width, right=right, bottom=bottom, top=0.80, wspace=0.18)
    return fig, fig.subplots(1, ncols, squeeze=False, width_ratios=ratios)[0]


def _clauses(text: str) -> list[str]:
    """``text``'s clauses, split at each ``; `` outside parentheses (``(> 2: unstable; GD
    needs lr < 0.0084)`` is one clause)."""
    out, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth == 0 and text.startswith("; ", i):
            out.append(text[start:i])
            start = i + 2
    return [c for c in [*out, text[start:]] if c]


def _title(fig, case: str, text: str) -> None:
    """The case, then the text one clause (``; ``) per line: never wrapped mid-phrase."""
    parts = _clauses(text)[:4]
    fig.suptitle("\n".join([f"{case}: {parts[0]}" if parts else case, *parts[1:]]),
                 fontsize=8, x=0.01, y=0.99, ha="left", va="top")
    fig.subplots_adjust(top=0.93 - 0.035 * max(len(parts) - 1, 0))


def _legend(ax, **kw: Any) -> None:
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, **kw)


def errors_plot(errors: Mapping[str, Any], case: str, path: Path) -> Path:
    """Per step: each framework's local error and tolerance, its trajectory difference and
    the envelope, the horizon; zeros (bitwise agreement) drawn at the axis' floor. A
    tolerance the frameworks share is drawn once; the legend sits under the axes; a long
    run gets the zoom panel of its last steps, as the loss plot has."""
    floor, top = 1e-18, 10.0
    series: list[tuple[np.ndarray, dict]] = []   # (values per step, how to draw them)
    tolerances: dict[bytes, list[str]] = {}   # each distinct tolerance line -> its frameworks
    for fw, e in errors["frameworks"].items():
        color = STYLE[fw]["color"]
        local, glob = (np.maximum(np.asarray(e[k], np.float64), floor) for k in ("local", "global"))
        for drawn in (local, glob):   # a mismatch's error (15 at step 0, say) stays inside the axes
            finite = drawn[np.isfinite(drawn)]
            top = max(top, 3 * float(finite.max(initial=0.0)))
        series.append((glob, dict(color=color, lw=1.0, label=f"{fw}: trajectories vs reference")))
        series.append((local, dict(color=color, lw=0.8, ls=":", alpha=0.8,
                                   label=f"{fw}: manual backward vs autograd (local)")))
        update = np.asarray(e.get("update", ()), np.float64)
        if update.size:   # a hand-written update, against the framework's optimizer
            update = np.maximum(update, floor)
            top = max(top, 3 * float(update[np.isfinite(update)].max(initial=0.0)))
            series.append((update, dict(color=color, lw=0.9, ls="--", alpha=0.6,
                                        marker="o" if len(update) < 3 else None, markersize=5,
                                        label=f"{fw}: manual update vs its optimizer")))
        tolerances.setdefault(np.asarray(e["allowed"], np.float64).tobytes(), []).append(fw)
    for line, owners in tolerances.items():
        color = STYLE[owners[0]]["color"] if len(owners) == 1 else "tab:gray"
        how = dict(color=color, lw=0.8, ls="-.", alpha=0.7, label=f"local tolerance ({', '.join(owners)})")
        series.append((np.frombuffer(line, np.float64), how))
    # The steps compared: a run that leaves the finite numbers is drawn up to there, its
    # envelope with it (beyond, it only repeats its last value).
    compared = max((len(v) for v, _ in series), default=0)
    env = np.asarray(errors["envelope"], np.float64)[:compared or None]
    if env.size:
        series.append((np.clip(env, floor, 1.0), dict(color="black", lw=1.4, ls="--",
                                                      label="envelope (what rounding may move the "
                                                            "trajectories by)")))
    steps = max((len(v) for v, _ in series), default=0)
    long = steps > 2 * ZOOM
    fig, axes = _figure(2 if long else 1, width=12.0 if long else 11.0, bottom=0.26,
                        ratios=[3, 1] if long else None)
    for v, how in series:
        axes[0].plot(np.arange(len(v)), v, **how)
        if long and len(v) > steps - ZOOM:
            at = np.arange(steps - ZOOM, len(v))
            axes[-1].plot(at, v[at], **{**how, "label": None})
    if errors.get("horizon") is not None:
        for axis in axes:
            label = f"predictability horizon (step {errors['horizon']})" if axis is axes[0] else None
            axis.axvline(errors["horizon"], color="tab:purple", lw=1.0, label=label)
    for axis in axes:
        axis.set_yscale("log")
        axis.set_ylim(floor / 2, top)
    if long:
        axes[-1].set_xlim(steps - ZOOM - 0.5, steps - 0.5)
        axes[-1].set_xlabel(f"last {ZOOM} steps")
    ax = axes[0]
    ax.set_xlabel("update step")
    ax.set_ylabel("normwise relative error")
    _title(fig, case, "each framework against the reference at every step (0 is drawn at 1e-18)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(0.0, -0.13), ncol=3, frameon=False)
    fig.savefig(path)
    return path


def loss_plot(trajs: dict[str, Trajectory], printed: dict[int, str], path: Path,
              diagnosis: str = "") -> Path:
    """Left: every epoch of the run; right: the last ``ZOOM`` epochs, one marker each."""
    ref = trajs["numpy"]
    fig, (ax, zoom) = _figure(2, width=11.0, ratios=[3, 1], bottom=0.2)
    epochs = np.arange(ref.epochs)
    # A diverging run's inf and NaN are left out (the title says where they start), and the
    # zoom shows its last finite epochs.
    losses = {name: np.where(np.isfinite(t.epoch_loss), t.epoch_loss, np.nan) for name, t in trajs.items()}
    finite = np.concatenate([v[np.isfinite(v)] for v in losses.values()])
    end = max((int(np.flatnonzero(np.isfinite(v))[-1]) + 1 for v in losses.values() if np.isfinite(v).any()),
              default=ref.epochs)
    last = epochs[max(end - ZOOM, 0):end]
    positive = finite.size > 0 and bool(np.all(finite > 0))
    ylabel = "loss per epoch"
    # A log axis' ticks overflow long before the float maximum (its margins and locator
    # reach past 1e308 from about 1e250 up: a diverging run's plot failed so); a loss past
    # 1e100 is diverging anyway, and its log10 on a plain axis reads as well.
    huge = positive and float(finite.max()) > 1e100
    if huge:
        losses = {name: np.log10(v) for name, v in losses.items()}
        ylabel = "log10 of the loss per epoch"
    # A run on a cycle alternates every epoch: one line through all its epochs is a solid band
    # that hides the cycle and the frameworks. Each phase is its own line then, the
    # frameworks' markers on them (the zoom shows every epoch).
    period = _period(ref) if ref.epochs > 2 * ZOOM else None
    for name, v in losses.items():
        if period is None:
            ax.plot(epochs, v, label=f"{name} (every epoch)", **STYLE[name])
        elif name == "numpy":
            for j in range(period):
                ax.plot(epochs[j::period], v[j::period], **STYLE[name],
                        label=f"numpy (each of the cycle's {period} phases its own line)" if j == 0 else None)
        else:
            every = max(1, ref.epochs // period // 25)
            for j in range(period):
                ax.plot(epochs[j::period], v[j::period], ls="none", marker=MARKERS[name], ms=5,
                        markevery=every, color=STYLE[name]["color"],
                        label=f"{name} (markers on each phase)" if j == 0 else None)
        zoom.plot(last, v[last], marker=".", **STYLE[name])
    log = positive and not huge
    if log:
        ax.set_yscale("log")
        zoom.set_yscale("log")
    if printed and not huge:
        e = np.array(sorted(printed))
        shown = np.array([float(printed[k]) for k in e])
        bottom = float(finite.min()) / 2 if log else None
        for axis, keep in ((ax, np.ones(len(e), bool)), (zoom, e >= (last[0] if len(last) else 0))):
            on = keep & ~((shown == 0) & log)
            axis.plot(e[on], shown[on], "o", mfc="none", mec="tab:green", ms=7,
                      label="printed by the document" if axis is ax else None)
            zero = keep & (shown == 0) & log   # a printed 0.0000 has no place on a log axis
            if zero.any():
                axis.plot(e[zero], np.full(zero.sum(), bottom), "v", color="tab:green", ms=6,
                          clip_on=False, label="printed 0.0000 (drawn at the bottom)" if axis is ax else None)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    zoom.set_xlabel(f"last {len(last)} epochs" + (" before inf/NaN" if end < ref.epochs else ""))
    if log:
        for axis in (ax, zoom):
            _plain_log_ticks(axis)
    _title(fig, ref.case, diagnosis)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.15), ncol=4, frameon=False)
    fig.savefig(path)
    return path


def _period(ref: Trajectory) -> int | None:
    """The period of the reference's cycle (its epoch loss), None where it has none."""
    from crosscheck.judging.diagnostics import dynamics

    d = dynamics(ref)
    return d.period if d.kind == "oscillating" and d.period else None


def _plain_log_ticks(axis) -> None:
    """A log axis' ticks as plain numbers (3.8 and 10, not 3.8x10^0); the ticks between the
    powers of 10 labelled only where the axis spans less than about one decade (else they
    crowd each other), once its limits are final. Over many decades (a diverging run's loss)
    the powers of 10 keep matplotlib's short form: 1e+300 would push the label off."""
    from matplotlib.ticker import FuncFormatter, NullFormatter

    low, high = axis.get_ylim()
    if high > 1e6 * low:   # many decades (a diverging run): powers of 10 stay short, 10^300
        return
    plain = FuncFormatter(lambda v, _: f"{v:g}")
    axis.yaxis.set_major_formatter(plain)
    axis.yaxis.set_minor_formatter(plain if high < 30 * low else NullFormatter())


def params_plot(trajs: dict[str, Trajectory], path: Path) -> Path:
    """The reference's parameters as lines, each framework's as its own markers on them."""
    ref = trajs["numpy"]
    long = ref.steps > 2 * ZOOM   # a long run gets the zoom panel of its last steps, as the loss plot
    fig, axes = _figure(2 if long else 1, width=12.0 if long else 10.0, right=0.83 if long else 0.80,
                        ratios=[3, 1] if long else None)
    ax, zoom = axes[0], (axes[1] if long else None)
    steps = np.arange(ref.steps + 1)
    every = max((ref.steps + 1) // MARKS, 1)
    last = steps[-ZOOM - 1:]
    # A full-batch run on a cycle alternates every step (an epoch): drawn through, a band.
    period = (_period(ref) or 1) if long and ref.steps == ref.epochs else 1
    for i, (pname, v) in enumerate(ref.params.items()):
        size = flat_size(v)
        drawn = _drawn(size)
        label = (pname if size == 1 else f"{pname} ({size} values)" if len(drawn) == size
                 else f"{pname} ({len(drawn)} of {size} values)")
        flat = v.reshape(len(v), -1)[:, drawn]
        for j in range(len(drawn)):   # one legend entry per parameter tensor
            for phase in range(period):   # a cycle: each phase its own line, as in the loss plot
                ax.plot(steps[phase::period], flat[phase::period, j], color=f"C{i}", lw=1.6, alpha=0.7,
                        label=label if j == 0 and phase == 0 else None)
            if zoom is not None:
                zoom.plot(last, flat[last, j], color=f"C{i}", lw=1.6, alpha=0.7)
    for name, t in trajs.items():
        if name == "numpy":
            continue
        for i, v in enumerate(t.params.values()):
            flat = v.reshape(len(steps), -1)[:, _drawn(flat_size(v))]
            for j in range(flat.shape[1]):
                ax.plot(steps[::every], flat[::every, j], MARKERS.get(name, "."), color=f"C{i}", ms=5,
                        mew=0.9, label=f"{name} (markers)" if i == 0 and j == 0 else None)
                if zoom is not None:   # every step there
                    zoom.plot(last, flat[last, j], MARKERS.get(name, "."), color=f"C{i}", ms=4, mew=0.8)
    if zoom is not None:
        zoom.set_xlabel(f"last {len(last) - 1} steps")
    ax.set_xlabel("update step")
    ax.set_ylabel("parameter value")
    _title(fig, ref.case, "parameters at every step; reference: lines, frameworks: markers on them; "
                          "their differences: the errors plot")
    _legend(zoom if zoom is not None else ax, handles=ax.get_legend_handles_labels()[0])
    fig.savefig(path)
    return path


def flat_size(v: Any) -> int:
    """Values per step of a recorded parameter (steps first)."""
    return int(np.prod(np.shape(v)[1:], dtype=np.int64))


def _drawn(size: int) -> np.ndarray:
    """Which of a tensor's ``size`` values the parameter plot draws: all, or ``LINES``
    spread evenly from the first to the last."""
    if size <= LINES:
        return np.arange(size)
    return np.unique(np.linspace(0, size - 1, LINES).round().astype(int))


def filenames(case: str) -> tuple[str, str, str]:
    """The files :func:`write` makes for ``case``: the errors, loss and parameter plots."""
    return f"{case}_errors.png", f"{case}_loss.png", f"{case}_params.png"


def write(trajs: dict[str, Trajectory], printed: dict[int, str], directory: Path,
          diagnosis: str = "", errors: Mapping[str, Any] | None = None) -> list[Path]:
    """Every plot of a case, each written aside and renamed, so never seen half-written."""
    directory.mkdir(parents=True, exist_ok=True)
    case = trajs["numpy"].case
    errs, loss, params = (directory / name for name in filenames(case))
    out = []
    if errors is not None:
        out.append(_atomic(lambda tmp: errors_plot(errors, case, tmp), errs))
    return [*out, _atomic(lambda tmp: loss_plot(trajs, printed, tmp, diagnosis), loss),
            _atomic(lambda tmp: params_plot(trajs, tmp), params)]


def _atomic(draw, path: Path) -> Path:
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.png")
    try:
        draw(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
