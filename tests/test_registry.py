"""A framework is one registry entry (``crosscheck/frameworks/registry.py``) and one models
module: the modules give what the rest reads from them, and no other module of the package
names a framework by hand, but for the facts listed in :data:`NAMED_BY_HAND`."""

import re
from pathlib import Path

import pytest
from helpers import FRAMEWORKS

from crosscheck import frameworks
from crosscheck.frameworks import REGISTRY

ROOT = Path(__file__).resolve().parent.parent

#: What every models module provides (``beside_helper`` too where its framework ``runs_here``).
INTERFACE = ("smoke", "train", "gradients", "relu_spellings", "derivative", "reference_update")

#: The modules that still write a framework's name, and why: facts about one framework's
#: library or releases, not a list of the frameworks.
NAMED_BY_HAND = {
    "frameworks/registry.py": "the registry itself",
    "frameworks/torch_models.py": "the framework's own module names itself in its trajectories",
    "frameworks/jax_models.py": "the framework's own module names itself in its trajectories",
    "crosscheck/judging/kinks.py": "EXPECTATIONS: each spelling's derivative, measured per framework release",
    "crosscheck/optim.py": "for_torch / for_jax, and what optax cannot express, per optimizer",
    "crosscheck/bench.py": "the benchmark's target for torch on relu",
    "crosscheck/running/environment.py": "the folder name of JAX's compilation cache",
    "crosscheck/judging/updates.py": "a wrong update's state is named as torch.optim's buffers: the declared "
                                     "optimizers have torch.optim's semantics",
}


@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_each_models_module_provides_what_is_read_from_it(fw):
    module = frameworks.load(fw)
    wanted = INTERFACE + (("beside_helper",) if REGISTRY[fw].runs_here else ())
    missing = [n for n in wanted if not callable(getattr(module, n, None))]
    assert not missing, f"{REGISTRY[fw].module} lacks {missing}"


def test_no_other_module_names_a_framework_by_hand():
    names = "|".join(map(re.escape, FRAMEWORKS))
    name = re.compile(rf"""["'](?:{names})["']""")
    found = {}
    scanned = sorted([*(ROOT / "crosscheck").rglob("*.py"), *(ROOT / "frameworks").rglob("*.py")])
    missing = [p for p in NAMED_BY_HAND if ROOT / p not in scanned]
    assert not missing, f"NAMED_BY_HAND lists files the scan never reads: {missing}"
    for path in scanned:
        lines = [n for n, line in enumerate(path.read_text().splitlines(), 1)
                 if name.search(line.split("#")[0])]   # a comment may name one
        if lines:
            found[str(path.relative_to(ROOT))] = lines
    unlisted = {p: lines for p, lines in found.items() if p not in NAMED_BY_HAND}
    assert not unlisted, (f"these name a framework by hand instead of reading crosscheck.frameworks.REGISTRY "
                          f"(file: lines): {unlisted}")
