"""Every command README.md shows runs as documented.

The README's convention: in a fenced code block, a line starting with ``$ `` is a command;
``# exit N`` at its end (optionally ``# exit N: reason``) is its exit code, 0 when absent.
Each ``crosscheck`` command runs in a real process, from a temporary directory (so any
output it writes lands there), importing this checkout; it must print no traceback and
exit with the documented code. ``make`` lines are the quick start, run by CI: they are
not run here, but ``make report`` and ``make test`` must be shown.
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
_FENCE = re.compile(r"^\s*(```|~~~)")
_EXIT = re.compile(r"\s#\s*exit\s+(\d+)\b[^#]*$")


def fenced_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) of every line inside a fenced code block."""
    inside, out = False, []
    for number, line in enumerate(text.splitlines(), 1):
        if _FENCE.match(line):
            inside = not inside
        elif inside:
            out.append((number, line))
    return out


def commands(text: str) -> list[tuple[int, str, int]]:
    """(line number, command, expected exit code) of every ``$ `` line in a code block."""
    found = []
    for number, line in fenced_lines(text):
        if line.startswith("$ "):
            m = _EXIT.search(line)
            found.append((number, line[2:].strip(), int(m[1]) if m else 0))
    return found


COMMANDS = commands(README.read_text(encoding="utf-8"))
CROSSCHECK = [c for c in COMMANDS if c[1].split()[0] == "crosscheck"]


def frameworks_of(command: str) -> list[str]:
    """The frameworks a ``crosscheck`` command runs: ``run`` and ``kinks`` those of its
    ``--framework`` options (default both), ``explain`` both, the others none."""
    argv = shlex.split(command, comments=True)
    if argv[1] not in ("run", "explain", "kinks"):
        return []
    named = [v for k, v in zip(argv[:-1], argv[1:], strict=True) if k == "--framework"]
    return named or ["torch", "jax"]


def test_readme_shows_commands_and_the_quick_start():
    shown = {cmd.split("#")[0].strip() for _, cmd, _ in COMMANDS}
    assert {"make report", "make test"} <= shown, f"README lacks make report or make test: {shown}"
    assert CROSSCHECK, "README shows no `$ crosscheck ...` command: tests/test_readme.py would check nothing"
    others = {cmd for _, cmd, _ in COMMANDS if cmd.split()[0] not in ("crosscheck", "make")}
    assert not others, f"README commands that are neither crosscheck nor make, not run by any test: {others}"


def test_every_command_like_line_has_the_prompt():
    # A `crosscheck ...` line without `$ ` would silently not run; only a synopsis ([...]) may omit it.
    unmarked = [(n, line) for n, line in fenced_lines(README.read_text(encoding="utf-8"))
                if line.lstrip().startswith(("crosscheck ", "make ")) and "[" not in line]
    assert not unmarked, f"README lines that look like commands but lack the `$ ` prompt: {unmarked}"


def test_convention_parses_exit_codes():
    # The parser itself: the exit comment, with or without a reason, and its absence.
    text = "```console\n$ crosscheck run x   # exit 1: why\n$ crosscheck list\n$ crosscheck y # note\n```\n"
    assert commands(text) == [(2, "crosscheck run x   # exit 1: why", 1), (3, "crosscheck list", 0),
                              (4, "crosscheck y # note", 0)]


@pytest.mark.readme
@pytest.mark.parametrize("line,command,code", [
    pytest.param(n, c, code, marks=[getattr(pytest.mark, fw) for fw in frameworks_of(c)], id=f"L{n}: {c}")
    for n, c, code in CROSSCHECK])
def test_readme_command(line, command, code, tmp_path):
    argv = shlex.split(command, comments=True)
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    shutil.copytree(ROOT / "examples", tmp_path / "examples")   # as in a checkout, written nowhere in it
    r = subprocess.run([sys.executable, "-m", "crosscheck", *argv[1:]], capture_output=True, text=True,
                       timeout=300, cwd=tmp_path, env={**os.environ, "PYTHONPATH": path})
    shown = f"README.md line {line}: `{command}`"
    assert "Traceback" not in r.stdout + r.stderr, f"{shown} printed a traceback:\n{r.stderr[-3000:]}"
    assert r.returncode == code, (f"{shown} exited {r.returncode}, README says {code}:\n"
                                  f"{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
