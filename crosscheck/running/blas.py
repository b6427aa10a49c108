"""Which OpenBLAS kernel computes the references' matrix products.

The first document's full-precision prints (``b1: -1.2619867906488234``) depend on the
order in which the BLAS dot kernel adds up a 10-term product such as
``dH_dW1.T @ dL_dH``. OpenBLAS picks its kernel for the CPU at load time: on an
AVX-512 CPU it picks ``SkylakeX`` and the last two or three digits come out otherwise
(``...488202``). The ``Haswell`` kernel (AVX2) reproduces every digit the document printed,
so the document ran on a ``Haswell``-class kernel, and we select it the same way, with
``OPENBLAS_CORETYPE=Haswell``, before NumPy loads OpenBLAS.

Nothing here imports NumPy: :func:`select_document_kernel` must run before it does.
"""

from __future__ import annotations

import os
import sys

#: The OpenBLAS core type whose dot kernel the document's printed digits come from.
DOCUMENT_KERNEL = "Haswell"


def _cpu_has_avx2_fma() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return {"avx2", "fma"} <= flags
    except OSError:
        pass
    return False


def select_document_kernel() -> None:
    """Ask OpenBLAS for the document's kernel, if it is not loaded yet and the CPU runs it.

    A user's own ``OPENBLAS_CORETYPE`` wins. Without AVX2 and FMA the kernel cannot run,
    and NumPy keeps its own choice.
    """
    if "numpy" in sys.modules or "OPENBLAS_CORETYPE" in os.environ:
        return
    if _cpu_has_avx2_fma():
        os.environ["OPENBLAS_CORETYPE"] = DOCUMENT_KERNEL


def active_kernel() -> str:
    """The BLAS NumPy uses, as ``openblas:Haswell``, ``mkl``, ... or ``unknown``."""
    try:
        import numpy  # noqa: F401  (loads the BLAS threadpoolctl inspects)
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown"
    for lib in threadpool_info():
        if lib.get("user_api") == "blas":
            arch = lib.get("architecture")
            return f"{lib['internal_api']}:{arch}" if arch else str(lib["internal_api"])
    return "unknown"


def is_document_kernel() -> bool:
    return active_kernel() == f"openblas:{DOCUMENT_KERNEL}"
