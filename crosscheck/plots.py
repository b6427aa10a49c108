"""Plots of what the printed epochs hide (matplotlib, Agg, no display needed).

For each case: ``<case>_loss.png``, the full per-epoch loss of every implementation
overlaid, with the epochs the document printed marked; and ``<case>_params.png``, every
parameter at every step.
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import numpy as np

from crosscheck.record import Trajectory

STYLE = {"numpy": dict(color="black", lw=2.2, ls="-", alpha=0.55),
         "torch": dict(color="tab:red", lw=1.0, ls="--"),
         "jax": dict(color="tab:blue", lw=1.0, ls=":")}


#: Epochs shown in the zoom panel of the loss plot.
ZOOM = 40


def _figure(ncols: int = 1, width: float = 8.0, ratios=None):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, 4.6), dpi=100)   # fixed margins: constrained layout re-measures
    FigureCanvasAgg(fig)                          # every text several times (half the cost)
    fig.subplots_adjust(left=0.07, right=0.98, bottom=0.11, top=0.84, wspace=0.15)
    return fig, fig.subplots(1, ncols, squeeze=False, width_ratios=ratios)[0]


def loss_plot(trajs: dict[str, Trajectory], printed: dict[int, str], path: Path,
              diagnosis: str = "") -> Path:
    """Left: every epoch of the run; right: the last ``ZOOM`` epochs, one marker each."""
    ref = trajs["numpy"]
    fig, (ax, zoom) = _figure(2, width=11.0, ratios=[3, 1])
    epochs = np.arange(ref.epochs)
    # A diverging run's inf and NaN are left out (the title says where they start), and the
    # zoom shows its last finite epochs.
    losses = {name: np.where(np.isfinite(t.epoch_loss), t.epoch_loss, np.nan) for name, t in trajs.items()}
    finite = np.concatenate([v[np.isfinite(v)] for v in losses.values()])
    end = max((int(np.flatnonzero(np.isfinite(v))[-1]) + 1 for v in losses.values() if np.isfinite(v).any()),
              default=ref.epochs)
    last = epochs[max(end - ZOOM, 0):end]
    positive = finite.size > 0 and bool(np.all(finite > 0))
    ylabel = "loss per epoch (as the hand-written code defines it)"
    huge = positive and float(finite.max()) > 1e300   # a log axis's ticks would overflow there
    if huge:
        losses = {name: np.log10(v) for name, v in losses.items()}
        ylabel = "log10 of the loss per epoch"
    for name, v in losses.items():
        ax.plot(epochs, v, label=f"{name} (every epoch)", **STYLE[name])
        zoom.plot(last, v[last], marker=".", **STYLE[name])
    if printed:
        e = np.array(sorted(printed))
        ax.plot(e, [float(printed[k]) for k in e], "o", mfc="none", mec="tab:green", ms=7,
                label="printed by the document")
        e = e[e >= last[0]]
        zoom.plot(e, [float(printed[k]) for k in e], "o", mfc="none", mec="tab:green", ms=7)
    if positive and not huge:
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    zoom.set_xlabel(f"last {len(last)} epochs" + (" before inf/NaN" if end < ref.epochs else ""))
    title = f"{ref.case}: {diagnosis}" if diagnosis else ref.case
    fig.suptitle(textwrap.fill(title, 150), fontsize=9, x=0.01, y=0.99, ha="left", va="top")
    ax.legend(fontsize=8, loc="upper right")
    fig.savefig(path)
    return path


def params_plot(trajs: dict[str, Trajectory], path: Path) -> Path:
    ref = trajs["numpy"]
    fig, (ax,) = _figure()
    steps = np.arange(ref.steps + 1)
    for name, t in trajs.items():
        for i, (pname, v) in enumerate(t.params.items()):
            flat = v.reshape(len(v), -1)
            for j in range(flat.shape[1]):   # one legend entry per parameter tensor
                label = pname if flat.shape[1] == 1 else f"{pname} ({flat.shape[1]} values)"
                ax.plot(steps, flat[:, j], color=f"C{i}", lw=STYLE[name]["lw"], ls=STYLE[name]["ls"],
                        alpha=STYLE[name].get("alpha", 1.0),
                        label=f"{label} ({name})" if name == "numpy" and j == 0 else None)
    ax.set_xlabel("update step")
    ax.set_ylabel("parameter value")
    fig.suptitle(f"{ref.case}: parameters at every step (numpy solid, torch dashed, jax dotted)",
                 fontsize=9, x=0.01, y=0.99, ha="left", va="top")
    ax.legend(fontsize=8, ncol=2, loc="upper right")
    fig.savefig(path)
    return path


def filenames(case: str) -> tuple[str, str]:
    """The files :func:`write` makes for ``case``: the loss plot, the parameter plot."""
    return f"{case}_loss.png", f"{case}_params.png"


def write(trajs: dict[str, Trajectory], printed: dict[int, str], directory: Path,
          diagnosis: str = "") -> list[Path]:
    """Both plots of a case, each written aside and renamed, so never seen half-written."""
    directory.mkdir(parents=True, exist_ok=True)
    loss, params = (directory / name for name in filenames(trajs["numpy"].case))
    return [_atomic(lambda tmp: loss_plot(trajs, printed, tmp, diagnosis), loss),
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
