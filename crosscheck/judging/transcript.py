"""Compare a run's transcript with what the document printed.

The document's output blocks are kept verbatim in ``reference/printed/<case>.txt``.
A block that ends without a newline is cut off in the document; its last line is
compared as a prefix.

Full-precision prints (``b1: -1.2619867906488234``) depend on the BLAS dot kernel
(see :mod:`crosscheck.running.blas`). Under the document's kernel every character must match.
Under another kernel a line whose text matches and whose numbers agree to within
``tolerances.BLAS_REORDER_RTOL`` is reported as a *rounding note*, not a mismatch.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
from pathlib import Path

from crosscheck import tolerances
from crosscheck.declaring import cases
from crosscheck.running import blas
from crosscheck.running.record import Trajectory

PRINTED = Path(importlib.import_module("crosscheck.reference").__file__).resolve().parent / "printed"
_NUMBER = re.compile(r"-?\d+\.\d+(?:e[-+]?\d+)?")


def printed(case: str) -> str:
    """The document's printed output for ``case``, as transcribed."""
    return (PRINTED / f"{case}.txt").read_text(encoding="utf-8")


@dataclasses.dataclass(frozen=True)
class LineDiff:
    line: int          # 1-based line number in the document's block
    expected: str
    got: str
    rounding_only: bool

    def __str__(self) -> str:
        kind = "BLAS rounding only" if self.rounding_only else "MISMATCH"
        return f"line {self.line} ({kind}): document {self.expected!r}, run {self.got!r}"


def _rounding_only(expected: str, got: str) -> bool:
    if _NUMBER.sub("#", expected) != _NUMBER.sub("#", got):
        return False
    pairs = zip(_NUMBER.findall(expected), _NUMBER.findall(got), strict=True)
    return all(abs(float(a) - float(b)) <= tolerances.BLAS_REORDER_RTOL * abs(float(a))
               for a, b in pairs)


def compare(case: str, produced: str) -> list[LineDiff]:
    """Every line where ``produced`` differs from the document's printed block."""
    text = printed(case)
    cut = not text.endswith("\n")
    want = text.splitlines()
    got = produced.splitlines()
    exact = blas.is_document_kernel()
    diffs = []
    for i, expected in enumerate(want):
        line = got[i] if i < len(got) else "<missing>"
        last_cut = cut and i == len(want) - 1
        if line == expected or (last_cut and line.startswith(expected)):
            continue
        diffs.append(LineDiff(i + 1, expected, line,
                              rounding_only=not exact and _rounding_only(expected, line)))
    return diffs


_LOSS_LINE = re.compile(r"^Epoch (\d+)[,|] Loss: (-?\d+\.\d+)")


def printed_losses(case: str, traj: Trajectory) -> dict[int, str]:
    """Epoch of ``traj`` -> the loss text the document printed for it.

    The document prints the last execution of its training cell; its epoch counter
    restarts at 0, so printed epoch ``e`` is ``e + traj.epochs - hyper["epochs"]``.
    A run with other hyper-parameters than the document's has no printed counterpart: {}.
    """
    if cases.get(case).printed_hyper() != dict(traj.hyper):
        return {}
    offset = traj.epochs - int(traj.hyper["epochs"])
    found = (_LOSS_LINE.match(line) for line in printed(case).splitlines())
    return {offset + int(m[1]): m[2] for m in found if m}


def mismatches(diffs: list[LineDiff]) -> list[LineDiff]:
    return [d for d in diffs if not d.rounding_only]
