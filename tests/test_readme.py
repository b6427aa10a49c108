"""Every command README.md and the documentation pages (docs/**/*.md) show runs as documented.

The convention: in a fenced code block, a line starting with ``$ `` is a command;
``# exit N`` at its end (optionally ``# exit N: reason``) is its exit code, 0 when absent.
Each ``crosscheck`` command runs in a real process, from a temporary directory (so any
output it writes lands there), importing this checkout; it must print no traceback and
exit with the documented code. A command shown in several places runs once, named by the
first place (the README, then the pages in path order), and must document one exit code
everywhere. ``make`` lines are the quick start, run by CI: they are not run here, but the
README must show ``make report`` and ``make test``.
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from crosscheck.frameworks import FRAMEWORKS

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
#: Where commands are shown: the README first, then every documentation page.
PAGES = [README, *sorted((ROOT / "docs").rglob("*.md"))]
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


def where(page: Path) -> str:
    return page.relative_to(ROOT).as_posix()


def text(page: Path) -> str:
    return page.read_text(encoding="utf-8")


#: (page, line number, command, expected exit code) of every command on every page.
SHOWN = [(where(page), n, c, code) for page in PAGES for n, c, code in commands(text(page))]
COMMANDS = [(n, c, code) for page, n, c, code in SHOWN if page == "README.md"]


def argv_of(command: str) -> tuple[str, ...]:
    """The command without its comment: what runs, the same wherever it is shown."""
    return tuple(shlex.split(command, comments=True))


def first_of_each(shown: list[tuple[str, int, str, int]]) -> list[tuple[str, int, str, int]]:
    """Each distinct ``crosscheck`` command once, where it is first shown."""
    first = {}
    for page, n, c, code in shown:
        if c.split()[0] == "crosscheck":
            first.setdefault(argv_of(c), (page, n, c, code))
    return list(first.values())


CROSSCHECK = first_of_each(SHOWN)

#: The README section whose console blocks show real outputs under their commands, each up
#: to a line "...": they must be what the command prints.
OUTPUTS_SECTION = "## Why is my gradient wrong?"


def shown_outputs(text: str) -> list[tuple[int, str, list[str]]]:
    """(line number, command, the output lines shown under it) in :data:`OUTPUTS_SECTION`."""
    start = text.index(OUTPUTS_SECTION)
    end = text.find("\n## ", start + 1)
    section = text[start:end if end >= 0 else None]
    offset = text[:start].count("\n")
    found = []
    for number, line in fenced_lines(section):
        if line.startswith("$ "):
            found.append((number + offset, line[2:].strip(), []))
        elif found and line != "..." and (not found[-1][2] or found[-1][2][-1] != "..."):
            found[-1][2].append(line)
        elif found and line == "...":
            found[-1][2].append(line)
    return [(n, c, [x for x in lines if x != "..."]) for n, c, lines in found]


#: What each command printed where test_readme_command ran it (the outputs test reads it).
PRINTED: dict[tuple[str, ...], str] = {}


def frameworks_of(command: str) -> list[str]:
    """The frameworks a ``crosscheck`` command runs: ``run`` and ``kinks`` those of its
    ``--framework`` options (default both), ``explain`` both, the others none."""
    argv = shlex.split(command, comments=True)
    if argv[1] not in ("run", "explain", "kinks"):
        return []
    named = [v for k, v in zip(argv[:-1], argv[1:], strict=True) if k == "--framework"]
    return named or list(FRAMEWORKS)


def test_readme_shows_commands_and_the_quick_start():
    shown = {cmd.split("#")[0].strip() for _, cmd, _ in COMMANDS}
    assert {"make report", "make test"} <= shown, f"README lacks make report or make test: {shown}"
    assert any(c.split()[0] == "crosscheck" for _, c, _ in COMMANDS), \
        "README shows no `$ crosscheck ...` command: tests/test_readme.py would check nothing there"
    assert len(PAGES) > 1, "no documentation page under docs/: tests/test_readme.py checks the README alone"


@pytest.mark.parametrize("page", PAGES, ids=where)
def test_every_command_is_crosscheck_or_make(page):
    others = [(n, c) for n, c, _ in commands(text(page)) if c.split()[0] not in ("crosscheck", "make")]
    assert not others, (f"{where(page)}: commands that are neither crosscheck nor make, "
                        f"not run by any test: {others}")


@pytest.mark.parametrize("page", PAGES, ids=where)
def test_every_command_like_line_has_the_prompt(page):
    # A `crosscheck ...` line without `$ ` would silently not run; only a synopsis ([...]) may omit it.
    unmarked = [(n, line) for n, line in fenced_lines(text(page))
                if line.lstrip().startswith(("crosscheck ", "make ")) and "[" not in line]
    assert not unmarked, f"{where(page)}: lines that look like commands but lack the `$ ` prompt: {unmarked}"


def test_a_command_shown_twice_documents_one_exit_code():
    codes = {}
    for page, n, c, code in SHOWN:
        codes.setdefault(argv_of(c), {})[f"{page} L{n}"] = code
    differ = {" ".join(argv): places for argv, places in codes.items() if len(set(places.values())) > 1}
    assert not differ, f"commands shown with different exit codes: {differ}"


def test_each_command_runs_once_where_first_shown():
    # The dedupe itself: the README's place names a command a page repeats, and it runs once.
    shown = [("README.md", 3, "crosscheck run x   # exit 1: why", 1),
             ("README.md", 4, "make test", 0),
             ("docs/a.md", 7, "crosscheck run x  # exit 1: the same", 1),
             ("docs/a.md", 8, "crosscheck list", 0)]
    assert first_of_each(shown) == [shown[0], shown[3]]


def test_convention_parses_exit_codes():
    # The parser itself: the exit comment, with or without a reason, and its absence.
    text = "```console\n$ crosscheck run x   # exit 1: why\n$ crosscheck list\n$ crosscheck y # note\n```\n"
    assert commands(text) == [(2, "crosscheck run x   # exit 1: why", 1), (3, "crosscheck list", 0),
                              (4, "crosscheck y # note", 0)]


@pytest.mark.readme
@pytest.mark.parametrize("page,line,command,code", [
    pytest.param(page, n, c, code, marks=[getattr(pytest.mark, fw) for fw in frameworks_of(c)],
                 id=f"{page} L{n}: {c}")
    for page, n, c, code in CROSSCHECK])
def test_readme_command(page, line, command, code, tmp_path):
    r = run_shown(command, tmp_path)
    shown = f"{page} line {line}: `{command}`"
    assert "Traceback" not in r.stdout + r.stderr, f"{shown} printed a traceback:\n{r.stderr[-3000:]}"
    assert r.returncode == code, (f"{shown} exited {r.returncode}, {page} says {code}:\n"
                                  f"{r.stdout[-2000:]}\n{r.stderr[-2000:]}")


def run_shown(command: str, tmp_path: Path) -> subprocess.CompletedProcess:
    """``command`` run as a user runs it, from a folder holding a copy of ``examples/``; what
    it printed is kept in :data:`PRINTED` for the outputs test."""
    argv = shlex.split(command, comments=True)
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    shutil.copytree(ROOT / "examples", tmp_path / "examples")   # as in a checkout, written nowhere in it
    # One process each (CROSSCHECK_JOBS=1): pytest-xdist's workers fill the cores already, and a
    # helper process would cost each command its imports again; the helper's own path is
    # tested where a test says --jobs 2 (tests/test_models.py) and by the signal tests.
    env = {**os.environ, "PYTHONPATH": path, "CROSSCHECK_JOBS": "1"}
    r = subprocess.run([sys.executable, "-m", "crosscheck", *argv[1:]], capture_output=True, text=True,
                       timeout=300, cwd=tmp_path, env=env)
    PRINTED[argv_of(command)] = r.stdout
    return r


@pytest.mark.readme
@pytest.mark.parametrize("line,command,lines", [
    pytest.param(n, c, lines, marks=[getattr(pytest.mark, fw) for fw in frameworks_of(c)], id=f"L{n}")
    for n, c, lines in shown_outputs(text(README))])
def test_the_readme_shows_what_the_command_prints(line, command, lines, tmp_path):
    printed = PRINTED.get(argv_of(command))
    if printed is None:   # this test alone: the command was not run by test_readme_command
        printed = run_shown(command, tmp_path).stdout
    got = printed.splitlines()[:len(lines)]
    assert lines and got == lines, (f"README.md line {line}: `{command}` shows {len(lines)} lines of output "
                                    "that are not what it prints; it prints:\n" + "\n".join(got))
