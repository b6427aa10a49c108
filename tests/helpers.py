"""Helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

from crosscheck.declaring import cases
from crosscheck.frameworks.registry import REGISTRY
from crosscheck.running import runner

#: The document cases, the frameworks, and every implementation (the reference first):
#: what the tests parametrize over.
CASES = list(cases.CASES)
FRAMEWORKS = list(REGISTRY)
IMPLEMENTATIONS = list(runner.IMPLEMENTATIONS)


@dataclasses.dataclass(frozen=True)
class Block:
    """Where a printed block comes from: ``document[offset:offset + length]``, hashed."""

    sha256: str
    document: str
    offset: int
    length: int


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def read_provenance(path: Path) -> tuple[dict[str, str], dict[str, Block]]:
    """``reference/printed/documents.sha256``: document -> its sha256, and block file -> Block.

    Lines are ``<sha256>  <document>`` or ``<sha256>  <case>.txt  <document>  <offset>
    <length>``; ``#`` starts a comment.
    """
    documents: dict[str, str] = {}
    blocks: dict[str, Block] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        fields = line.split("#", 1)[0].split()
        if len(fields) == 2:
            documents[fields[1]] = fields[0]
        elif len(fields) == 5:
            digest, name, document, offset, length = fields
            blocks[name] = Block(digest, document, int(offset), int(length))
        elif fields:
            raise ValueError(f"{path}:{number}: expected 2 or 5 fields, got {line!r}")
    return documents, blocks


def block_problems(name: str, data: bytes, block: Block) -> list[str]:
    """What differs between a printed block's bytes and its recorded provenance."""
    problems = []
    if len(data) != block.length:
        problems.append(f"{name} is {len(data)} bytes, recorded {block.length}")
    if sha256(data) != block.sha256:
        problems.append(f"{name} has sha256 {sha256(data)}, recorded {block.sha256}")
    return problems


# ---------------------------------------------------------------------------- users' models
def cli(capsys, *argv: str) -> tuple[int, str, str]:
    """``crosscheck <argv>`` in this process: exit code, stdout and stderr."""
    from crosscheck.cli import main

    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def normwise_differ(a, b, rtol: float = 1e-9) -> bool:
    """``a`` and ``b`` differ by more than ``rtol`` of the larger norm (rounding is far below)."""
    import numpy as np

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        return True
    scale = max(np.linalg.norm(a), np.linalg.norm(b), 1e-300)
    return bool(np.linalg.norm(a - b) > rtol * scale)


def blamed_parameters(comparison) -> set[str]:
    """The parameters whose gradient goes wrong at a comparison's first divergent step."""
    return {p for q, p in comparison.blamed() if q == "grad"}


# ---------------------------------------------------------------------------- environments
BROKEN = "raise ImportError('{module} is broken on purpose (test)')"


def broken_framework(tmp_path: Path, module: str, version: str = "2.14.1", body: str = BROKEN) -> dict:
    """A fake ``module`` package in ``tmp_path`` with its own metadata, so that its installed
    version reads ``version``: an install broken as ``body`` is. Returns the environment
    (PYTHONPATH, ahead of the real one) that a subprocess sees it in."""
    import os

    (tmp_path / module).mkdir()
    (tmp_path / module / "__init__.py").write_text(body.format(module=module) + "\n")
    info = tmp_path / f"{module}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: {version}\n")
    return {"PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}


# ---------------------------------------------------------------------------- meta-tests
class ExactAutograd:
    """A stand-in for a framework that is exact by construction: ``train`` is the correct
    case's own reference run, relabelled as this framework's, and ``gradients`` its manual
    backward. A meta-test of the comparison judges a planted mistake against it, so nothing
    it asserts depends on a framework's numerics (a 1e-9 change in a torch release reads as
    a framework change in the cross-check tests, never as a broken meta-test)."""

    def __init__(self, framework: str, correct) -> None:
        self.framework, self.correct = framework, correct

    def train(self, problem, dtype="float64", progress=None):
        keys = self.correct.reruns
        overrides = {k: tuple(v) if isinstance(v, list) else v for k, v in problem.hyper.items() if k in keys}
        traj = self.correct.run_reference(**overrides)
        if progress is not None:
            progress(traj.steps)
        return dataclasses.replace(traj, case=problem.case, framework=self.framework)

    def gradients(self, problem, params, sample=None, dtype="float64"):
        import numpy as np

        loss, grads = self.correct.gradient(params, problem.hyper, sample)
        return {"loss": float(loss), "params": {k: np.asarray(v, np.float64) for k, v in grads.items()},
                "intermediates": {}}


def exact_frameworks(monkeypatch, correct) -> None:
    """Every framework replaced by :class:`ExactAutograd` of the case ``correct`` (a document
    case or a ``Model``'s ``case``), for the rest of the test."""
    from crosscheck import frameworks

    monkeypatch.setattr(frameworks, "load", lambda fw: ExactAutograd(fw, correct))


def exactly(case: str, framework: str = "exact", **overrides):
    """The correct reference run of ``case``, relabelled as ``framework``'s: what an exact
    autograd would record."""
    return dataclasses.replace(runner.run(case, **overrides), framework=framework)


def mutant(case: str, *edits: tuple[str, str]):
    """A copy of ``case``'s reference module, each ``(old, new)`` replaced exactly once (a
    planted bug: see tests/meta/)."""
    import inspect
    import types

    from crosscheck.declaring import cases

    module = inspect.getmodule(cases.get(case).run_reference)
    source = inspect.getsource(module)
    for old, new in edits:
        assert source.count(old) == 1, f"[{case}] planted text must occur once: {old!r}"
        source = source.replace(old, new)
    copy = types.ModuleType(f"{module.__name__}_mutant")
    copy.__file__ = module.__file__
    exec(compile(source, f"<mutant of {module.__name__}>", "exec"), copy.__dict__)
    return copy


def run_mutant(copy, **overrides):
    """The planted copy's run (its module's ``run``), overflows silenced."""
    import numpy as np

    with np.errstate(all="ignore"):  # a planted bug may make the run blow up
        return copy.run(**overrides)
