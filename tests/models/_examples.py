"""The example a planted mistake is made from, imported from ``examples/`` by its file name:
a planted model is its example's declaration with one function replaced
(``dataclasses.replace(example(...).model, ...)``), so that the one line that is wrong is
all the planted file holds."""

import importlib.util
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def example(name: str):
    """``examples/<name>.py`` as a module (imported once per process)."""
    key = f"crosscheck_example_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, EXAMPLES / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]
