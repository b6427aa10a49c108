"""The versions that produce a run: recorded in baselines and reports."""

from __future__ import annotations

import platform
from importlib import metadata

from crosscheck import blas


def installed(dist: str) -> str | None:
    """The installed version of distribution ``dist`` (None: not installed), read from its
    metadata without importing it: also for a package that crashes on import."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def versions() -> dict[str, str | None]:
    """python, numpy, torch, jax, jaxlib and the BLAS kernel, without importing torch or JAX."""
    return {"python": platform.python_version(), "numpy": installed("numpy"),
            "torch": installed("torch"), "jax": installed("jax"), "jaxlib": installed("jaxlib"),
            "blas": blas.active_kernel()}


def line(v: dict[str, str | None] | None = None) -> str:
    """``versions: python 3.11.7, numpy 2.4.6, torch 2.13.0, ...``: one line, for a log."""
    v = versions() if v is None else v
    return "versions: " + ", ".join(f"{k} {x if x is not None else 'not installed'}" for k, x in v.items())
