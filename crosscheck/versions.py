"""The versions that produce a run: recorded in baselines and reports."""

from __future__ import annotations

import platform
from importlib import metadata

from crosscheck import blas


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def versions() -> dict[str, str | None]:
    """python, numpy, torch, jax, jaxlib and the BLAS kernel, without importing torch or JAX."""
    return {"python": platform.python_version(), "numpy": _version("numpy"),
            "torch": _version("torch"), "jax": _version("jax"), "jaxlib": _version("jaxlib"),
            "blas": blas.active_kernel()}
