"""The versions that produce a run: recorded in baselines and reports."""

from __future__ import annotations

import platform
from collections.abc import Sequence
from importlib import metadata

from crosscheck.frameworks.registry import FRAMEWORKS, REGISTRY
from crosscheck.running import blas


def installed(dist: str) -> str | None:
    """The installed version of distribution ``dist`` (None: not installed), read from its
    metadata without importing it: also for a package that crashes on import."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def versions() -> dict[str, str | None]:
    """python, numpy, each framework's packages (torch, jax, jaxlib) and the BLAS kernel,
    without importing a framework."""
    return {"python": platform.python_version(), "numpy": installed("numpy"),
            **{d: installed(d) for fw in REGISTRY.values() for d in fw.packages},
            "blas": blas.active_kernel()}


def line(v: dict[str, str | None] | None = None,
         frameworks: Sequence[str] = FRAMEWORKS) -> str:
    """``versions: python 3.11.7, numpy 2.4.6, torch 2.13.0, ...``: one line, for a log, naming
    the frameworks that ran (``frameworks``) and not the others."""
    v = versions() if v is None else v
    left_out = {d for fw in REGISTRY.values() if fw.name not in frameworks for d in fw.packages}
    return "versions: " + ", ".join(f"{k} {x if x is not None else 'not installed'}" for k, x in v.items()
                                    if k not in left_out)
