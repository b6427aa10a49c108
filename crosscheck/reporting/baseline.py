"""Regression baselines: one npz of the reference trajectory per case, plus a sidecar
``versions.json`` naming the versions that produced them.

The npz layout is :meth:`Trajectory.to_arrays`; ``tests/test_baselines.py`` writes and
checks them with pytest-regressions' ``ndarrays_regression``. Every problem a baseline can
have becomes one :class:`BaselineError` or one message from :func:`verify`, worded for
its cause and naming the exact command that fixes it:

* missing, unreadable or wrongly laid out file: rewrite it from the reference;
* the reference no longer reproduces it: a regression, or a deliberate change that
  rewrites it from the reference;
* a framework disagrees with it while the reference still reproduces it: a framework
  mismatch, never a reason to regenerate (only the reference writes baselines);
* a framework disagrees with it and so does the reference: the reference changed and the
  baseline is stale, which the framework's check says too, instead of blaming the framework.

Only the reference's change ever suggests regenerating.
"""

from __future__ import annotations

import json
import shlex
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from crosscheck import tolerances
from crosscheck.judging.metrics import causal_scale
from crosscheck.running.versions import versions

ROOT = Path(__file__).resolve().parents[2]   # (crosscheck/reporting/baseline.py)
DIR = ROOT / "tests" / "test_baselines"
TESTS = ROOT / "tests" / "test_baselines.py"
TEST = "test_matches_baseline"
SIDECAR = "versions.json"
REQUIRED = ("epoch_loss", "step_loss", "pred_train", "pred_test")
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip's first local header, or an empty zip


class BaselineError(Exception):
    """A baseline that is missing, unreadable or of the wrong layout; the message says
    what is wrong and the command that rewrites it."""


def path(case: str, directory: Path = DIR) -> Path:
    return Path(directory) / f"{case}.npz"


def regen_command(case: str | None = None, directory: Path = DIR) -> str:
    """The exact shell command that rewrites ``case``'s baseline from the reference (every
    case's and ``versions.json`` when ``case`` is None). It starts in the repository root,
    so ``python -m`` imports this checkout's code whatever is installed."""
    tests = TESTS.relative_to(ROOT).as_posix()
    if case is None:
        args = [tests, "-k", "numpy"]
    else:
        args = [f"{tests}::{TEST}[{case}-numpy]"]
    args.append("--regen-all")
    if Path(directory).resolve() != DIR:
        args += ["--baseline-dir", str(Path(directory).resolve())]
    return f"cd {shlex.quote(str(ROOT))} && {shlex.join([sys.executable, '-m', 'pytest', *args])}"


def _unusable(case: str, p: Path, what: str, directory: Path) -> BaselineError:
    return BaselineError(f"baseline {p} {what}; rewrite it from the reference: "
                         f"{regen_command(case, directory)}")


def load(case: str, directory: Path = DIR) -> dict[str, np.ndarray]:
    """The baseline arrays of ``case``; :class:`BaselineError` if missing or corrupt."""
    p = path(case, directory)
    if not p.is_file():
        raise _unusable(case, p, "is missing", directory)
    with open(p, "rb") as fh:
        head = fh.read(64)
    if not head:
        raise _unusable(case, p, "is empty (0 bytes)", directory)
    if head[:4] not in _ZIP_MAGIC:
        raise _unusable(case, p, f"is not an npz (zip) archive: it starts with {head[:16]!r}", directory)
    try:
        with open(p, "rb") as fh, np.load(fh, allow_pickle=False) as f:  # np.load(path) leaks
            arrays = {k: f[k] for k in f.files}                          # its handle on bad zips
    except ValueError as e:  # a valid zip whose members are object arrays, or not .npy at all
        raise _unusable(case, p, f"holds data that is not a plain array ({e})", directory) from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as e:
        raise _unusable(case, p, f"is a damaged npz archive ({type(e).__name__}: {e})",
                        directory) from None
    missing = sorted(set(REQUIRED) - set(arrays))
    if missing:
        raise _unusable(case, p, f"lacks the arrays {missing}", directory)
    return arrays


def normwise_tolerances(arrays: dict[str, np.ndarray], steps: int,
                        dtype: str = "float64") -> dict[str, dict[str, float]]:
    """``ndarrays_regression`` tolerances that implement the comparison's error measure.

    ``isclose`` checks ``|a - b| <= atol + rtol * |b|`` elementwise; with ``rtol = 0`` and
    ``atol = rtol(steps) * causal_scale`` (an array broadcast over each step's elements)
    it is exactly the bound :func:`crosscheck.judging.compare.compare` applies.
    """
    tol = tolerances.rtol(steps, dtype)
    out = {}
    for k, v in arrays.items():
        if v.dtype.kind == "f":
            v2 = v.reshape(1) if v.ndim == 0 else v
            scale = causal_scale(v2).reshape(-1, *([1] * (v2.ndim - 1)))
            atol = np.broadcast_to(tol * scale, v.shape).copy() if v.ndim else float(tol * scale[0])
            out[k] = {"atol": atol, "rtol": 0.0}
    return out


def read_versions(directory: Path = DIR) -> dict:
    """The versions that produced the baselines; :class:`BaselineError` if the sidecar is
    missing or unreadable."""
    p = Path(directory) / SIDECAR
    if not p.is_file():
        problem = "is missing"
    else:
        try:
            made_with = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as e:
            problem = f"is unreadable ({type(e).__name__}: {e})"
        else:
            if isinstance(made_with, dict):
                return made_with
            problem = f"holds a {type(made_with).__name__}, not a mapping of versions"
    raise BaselineError(f"{p} {problem}: it names the versions that produced the baselines; "
                        f"rewrite it with them from the reference: {regen_command(None, directory)}")


def write_versions(directory: Path = DIR) -> None:
    p = Path(directory) / SIDECAR
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(versions(), indent=2, sort_keys=True) + "\n", encoding="utf-8")


def header(directory: Path = DIR) -> str:
    """One line for pytest's header: the frameworks the baselines were made with, those
    running, and any other version that changed since."""
    from crosscheck.frameworks.registry import REGISTRY

    named = [fw.packages[0] for fw in REGISTRY.values()]   # torch, jax (not jaxlib)
    now = versions()
    running = "running " + ", ".join(f"{d} {now[d]}" for d in named)
    try:
        made_with = read_versions(directory)
    except BaselineError:
        return f"crosscheck baselines: made with unknown versions ({SIDECAR} unusable); {running}"
    others = [f"{k} {made_with.get(k)} -> {v}" for k, v in now.items()
              if k not in named and made_with.get(k) != v]
    return (f"crosscheck baselines: made with {', '.join(f'{d} {made_with.get(d)}' for d in named)}; "
            f"{running}" + (f" (also changed: {', '.join(others)})" if others else ""))


def _drift(directory: Path) -> str:
    try:
        made_with = read_versions(directory)
    except BaselineError:
        return f"the versions that made it are unknown ({SIDECAR} unusable)"
    drift = [f"{k} {made_with.get(k)} -> {v}" for k, v in versions().items() if made_with.get(k) != v]
    return "made with the installed versions" if not drift else "versions since: " + ", ".join(drift)


def _detail(assertion: str) -> str:
    # pytest-regressions ends its first line with advice to --force-regen, right only for the reference.
    return "\n".join(line for line in assertion.splitlines() if "--force-regen" not in line).strip()


def mismatch_message(case: str, implementation: str, detail: str, directory: Path = DIR,
                     reference_reproduces: bool | None = None) -> str:
    """The one message for a trajectory that differs from its baseline. For a framework,
    ``reference_reproduces`` says whether the reference still reproduces that baseline
    (None: not asked): if not, the baseline is stale and the message says so."""
    p = path(case, directory)
    if implementation != "numpy" and reference_reproduces is False:
        head = (f"[{case}/{implementation}] the reference changed: its baseline {p} is stale, the reference "
                f"no longer reproduces it either ({_drift(directory)}), so this is not a {implementation} "
                f"mismatch. If the change is deliberate (a case was changed, or new pinned versions), "
                f"rewrite it from the reference: {regen_command(case, directory)}; otherwise the reference "
                f"has regressed ([{case}-numpy] says the same).")
    elif implementation == "numpy":
        head = (f"[{case}/numpy] the reference no longer reproduces its baseline {p} "
                f"({_drift(directory)}). If the change is deliberate (a case was changed, or new "
                f"pinned versions), rewrite it from the reference: {regen_command(case, directory)}; "
                f"otherwise the reference has regressed.")
    else:
        see = f"cd {shlex.quote(str(ROOT))} && " + shlex.join(
            [sys.executable, "-m", "crosscheck", "run", case, "--framework", implementation])
        head = (f"[{case}/{implementation}] {implementation} disagrees with the reference's baseline {p}: "
                f"a framework mismatch, not a stale baseline, so the baseline stays as it is (only the "
                f"reference writes it). "
                + ("The reference still reproduces it. " if reference_reproduces else
                   f"If [{case}-numpy] fails as well, the reference changed: see its message first. ")
                + f"Where {implementation} parts from the reference: {see}")
    return f"{head}\n{_detail(detail)}"


def _differs(case: str, arrays: dict[str, np.ndarray], steps: int, check: Callable[..., None],
             directory: Path, scale_from: dict[str, np.ndarray]) -> str | None:
    try:
        check(arrays, fullpath=path(case, directory), tolerances=normwise_tolerances(scale_from, steps))
    except AssertionError as e:
        return str(e)
    return None


def reproduces(case: str, reference: dict[str, np.ndarray], steps: int, check: Callable[..., None],
               directory: Path = DIR) -> bool:
    """Whether the reference's arrays still match ``case``'s (usable) baseline: if not, it is stale."""
    return _differs(case, reference, steps, check, directory, reference) is None


def verify(case: str, implementation: str, arrays: dict[str, np.ndarray], steps: int,
           check: Callable[..., None], directory: Path = DIR,
           reference: dict[str, np.ndarray] | None = None) -> str | None:
    """None if ``arrays`` match ``case``'s baseline; otherwise the one message to report.

    ``check`` is ``ndarrays_regression.check``: it compares against the baseline file
    (``fullpath``) and raises ``AssertionError`` with the differing values. For a framework,
    ``reference`` (the reference's arrays of the same run) tells a stale baseline apart from
    a framework that disagrees with a current one.
    """
    try:
        expected = load(case, directory)
    except BaselineError as e:
        return f"[{case}/{implementation}] {e}"
    scale_from = arrays if implementation == "numpy" else expected
    detail = _differs(case, arrays, steps, check, directory, scale_from)
    if detail is None:
        return None
    current = None
    if implementation != "numpy" and reference is not None:
        current = reproduces(case, reference, steps, check, directory)
    return mismatch_message(case, implementation, detail, directory, current)
