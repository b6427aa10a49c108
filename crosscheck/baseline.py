"""Regression baselines: one npz of the reference trajectory per case, plus a sidecar
``versions.json`` naming the versions that produced them.

The npz layout is :meth:`Trajectory.to_arrays`; ``tests/test_baselines.py`` writes and
checks them with pytest-regressions' ``ndarrays_regression``. Loading goes through
:func:`load`, which turns a missing or unreadable file into one clear
:class:`BaselineError` instead of a traceback.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np

from crosscheck import tolerances
from crosscheck.compare import causal_scale
from crosscheck.versions import versions

DIR = Path(__file__).resolve().parent.parent / "tests" / "test_baselines"
SIDECAR = "versions.json"
REGEN_HINT = "regenerate from the reference: pytest tests/test_baselines.py -k numpy --force-regen"


class BaselineError(Exception):
    """A baseline that is missing, unreadable or of the wrong layout."""


def path(case: str, directory: Path = DIR) -> Path:
    return Path(directory) / f"{case}.npz"


def load(case: str, directory: Path = DIR) -> dict[str, np.ndarray]:
    """The baseline arrays of ``case``; :class:`BaselineError` if missing or corrupt."""
    p = path(case, directory)
    if not p.is_file():
        raise BaselineError(f"baseline for {case!r} is missing: {p}; {REGEN_HINT}")
    try:
        with open(p, "rb") as fh, np.load(fh, allow_pickle=False) as f:  # np.load(path) leaks
            arrays = {k: f[k] for k in f.files}                          # its handle on bad zips
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise BaselineError(f"baseline for {case!r} is corrupt ({type(e).__name__}: {e}): {p}; "
                            f"{REGEN_HINT}") from None
    missing = {"epoch_loss", "step_loss", "pred_train", "pred_test"} - set(arrays)
    if missing:
        raise BaselineError(f"baseline for {case!r} lacks {sorted(missing)}: {p}; {REGEN_HINT}")
    return arrays


def normwise_tolerances(arrays: dict[str, np.ndarray], steps: int,
                        dtype: str = "float64") -> dict[str, dict[str, float]]:
    """``ndarrays_regression`` tolerances that implement the comparison's error measure.

    ``isclose`` checks ``|a - b| <= atol + rtol * |b|`` elementwise; with ``rtol = 0`` and
    ``atol = rtol(steps) * causal_scale`` (an array broadcast over each step's elements)
    it is exactly the bound :func:`crosscheck.compare.compare` applies.
    """
    tol = tolerances.rtol(steps, dtype)
    out = {}
    for k, v in arrays.items():
        if v.dtype.kind == "f":
            v2 = v.reshape(1) if v.ndim == 0 else v
            scale = causal_scale(v2).reshape(-1, *([1] * (v2.ndim - 1)))
            out[k] = {"atol": (tol * scale).reshape(v.shape) if v.ndim else float(tol * scale), "rtol": 0.0}
    return out


def read_versions(directory: Path = DIR) -> dict | None:
    try:
        return json.loads((Path(directory) / SIDECAR).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def write_versions(directory: Path = DIR) -> None:
    p = Path(directory) / SIDECAR
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(versions(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
