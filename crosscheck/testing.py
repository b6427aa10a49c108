"""Assertions for a user's own test suite (pytest or any other)."""

from __future__ import annotations

from collections.abc import Sequence

from crosscheck import frameworks as fw_registry
from crosscheck.api import check
from crosscheck.declaring.model import Model


def assert_backprop_matches(model: Model, frameworks: Sequence[str] = fw_registry.FRAMEWORKS,
                            dtype: str = "float64") -> None:
    """Raise ``AssertionError`` unless ``model``'s hand-written backward agrees with every
    framework's autograd, step by step (see [`crosscheck.check`][crosscheck.api.check]). The message names
    the model, the framework, the step, the parameter and both values."""
    result = check(model, frameworks, dtype)
    if result.agree:
        return
    lines = [f"[{model.name}] hand-written backprop does not match autograd:"]
    for fw, verdict in result.verdicts.items():
        if not result.report.agree(fw):
            tag = f"[{model.name}/{fw}]"
            lines.append(f"  {verdict}" if tag in verdict else f"  {tag} {verdict}")
    first = result.first_divergence
    if first is not None:
        lines.append(f"first: {first}")
        if first.explanation:
            lines.append(f"likely: {first.likely}")
    raise AssertionError("\n".join(lines))


def assert_gradient_matches(model: Model, draws: int = 3, seed: int = 0,
                            frameworks: Sequence[str] = fw_registry.FRAMEWORKS,
                            dtype: str = "float64") -> None:
    """Raise ``AssertionError`` unless ``model``'s hand-written gradient agrees with every
    framework's autograd at its initial values and ``draws`` random points (see
    [`crosscheck.check_gradient`][crosscheck.points.check_gradient]: no training run, no lr or
    epochs needed)."""
    from crosscheck.points import check_gradient

    result = check_gradient(model, draws, seed, frameworks, dtype)
    if not result.agree:
        raise AssertionError(f"[{model.name}] hand-written gradient does not match autograd:\n{result}")
