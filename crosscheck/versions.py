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
