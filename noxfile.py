"""The version matrix: the whole suite under three sets of dependency versions (nox sessions).

* ``pinned``: exactly ``constraints.txt``, the set ``make test`` uses and the baselines were made with.
* ``floors``: every ``>=`` floor of ``pyproject.toml`` installed as ``==`` (the oldest supported
  releases; the floors claim the suite passes with all of them together).
* ``newest``: whatever pip resolves today for ``pyproject.toml``'s ranges.

Each session installs the project as the Makefile does (editable, ``[frameworks,test]``) into its
own virtualenv under ``.nox/``, prints the versions it got, then runs ``ruff check`` and ``pytest``
(arguments after ``--`` go to pytest). ``TORCH=2.14.1`` replaces torch's version in every session;
unset, torch is constraints.txt's (torch builds other than the pinned one are CUDA wheels of
several GB, so only the pinned CPU build is the default). ``make matrix`` runs all three;
``.venv/bin/nox -r -s floors`` reuses the floors virtualenv and runs that session alone.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import nox
from packaging.requirements import Requirement

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent
CONSTRAINTS = ROOT / "constraints.txt"
EXTRAS = "frameworks,test"
# What the session's record shows: the frameworks, the array libraries and the plotting one.
SHOWN = re.compile(r"^(numpy|jax|jaxlib|torch|array.api.compat|matplotlib)==", re.IGNORECASE)

nox.options.sessions = ["pinned", "floors", "newest"]


def constraint_pins(path: Path = CONSTRAINTS) -> dict[str, str]:
    """constraints.txt as {name: 'name==version'}, names normalised (PEP 503)."""
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            out[_norm(req.name)] = line
    return out


def floor_pins(path: Path = ROOT / "pyproject.toml") -> dict[str, str]:
    """Every ``name>=X`` of pyproject.toml's dependencies and the extras the sessions install, as
    {name: 'name==X'}. Not the build requirements: setuptools>=64 builds in its own isolated
    environment, while torch itself needs setuptools>=77.0.3 beside it."""
    project = tomllib.loads(path.read_text(encoding="utf-8"))["project"]
    reqs = list(project["dependencies"])
    for extra in EXTRAS.split(","):
        reqs += project["optional-dependencies"][extra]
    out = {}
    for req in map(Requirement, reqs):
        low = [s.version for s in req.specifier if s.operator == ">="]
        if low:
            out[_norm(req.name)] = f"{req.name}=={low[0]}"
    return out


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _torch(default: str) -> str:
    """TORCH=X.Y.Z from the environment, else ``default``."""
    version = os.environ.get("TORCH")
    return f"torch=={version}" if version else default


def _install_and_test(session: nox.Session, constraints: dict[str, str], upgrade: bool = False) -> None:
    """The Makefile's install under ``constraints``, the versions it got, then ruff and pytest."""
    path = Path(session.create_tmp()) / "constraints.txt"
    path.write_text("\n".join(constraints.values()) + "\n", encoding="utf-8")
    # Reusing a virtualenv (-r) must not keep yesterday's "newest".
    eager = ["--upgrade", "--upgrade-strategy", "eager"] if upgrade else []
    session.install(*eager, "-c", str(path), "setuptools")
    session.install(*eager, "-c", str(path), "--no-build-isolation", "--config-settings",
                    "editable_mode=compat", "-e", f".[{EXTRAS}]")
    freeze = session.run("python", "-m", "pip", "freeze", silent=True) or ""
    session.log("versions: " + ", ".join(line for line in freeze.splitlines() if SHOWN.match(line)))
    session.run("ruff", "check", ".")
    session.run("python", "-m", "pytest", *session.posargs)


@nox.session
def pinned(session: nox.Session) -> None:
    """constraints.txt exactly: the set ``make test`` uses."""
    constraints = constraint_pins()
    constraints["torch"] = _torch(constraints["torch"])
    _install_and_test(session, constraints)


@nox.session
def floors(session: nox.Session) -> None:
    """pyproject.toml's floors, all together; everything else as pip resolves it."""
    constraints = floor_pins()
    constraints["torch"] = _torch(constraints["torch"])
    _install_and_test(session, constraints)


@nox.session
def newest(session: nox.Session) -> None:
    """The newest releases pip resolves within pyproject.toml's ranges (torch: the pinned build)."""
    _install_and_test(session, {"torch": _torch(constraint_pins()["torch"])}, upgrade=True)
