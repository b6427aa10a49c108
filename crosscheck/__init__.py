"""backprop-crosscheck: hand-written backpropagation checked step by step against autograd."""

from crosscheck.running.blas import select_document_kernel

select_document_kernel()  # before anything imports NumPy

__version__ = "0.1.0"

# The repository keeps reference/ and frameworks/ beside this folder; a wheel installs them
# inside this package (pyproject's package-dir). Either way they import as
# crosscheck.reference and crosscheck.frameworks, and no generic top-level name is installed.
_source_tree = __import__("pathlib").Path(__file__).resolve().parent.parent
if (_source_tree / "reference" / "__init__.py").is_file() and not (
        __import__("pathlib").Path(__file__).parent / "reference").is_dir():
    __path__.append(str(_source_tree))


__all__ = ["Model", "ModelError", "check", "check_gradient", "explain"]


def __getattr__(name: str):
    """``crosscheck.Model``, ``crosscheck.ModelError``, ``crosscheck.check``,
    ``crosscheck.check_gradient`` and ``crosscheck.explain``, imported when first asked for
    (the command line starts without them)."""
    if name in ("Model", "ModelError"):
        from crosscheck.declaring import model

        return getattr(model, name)
    if name in ("check", "explain"):
        from crosscheck import api

        return getattr(api, name)
    if name == "check_gradient":
        from crosscheck.points import check_gradient

        return check_gradient
    raise AttributeError(f"module 'crosscheck' has no attribute {name!r}")
