"""The suite runs cleanly without a framework: with one broken on PYTHONPATH (a fake that
fails on import, as torch 2.14.1 without libcudnn does), ``pytest -m "not <it>"`` collects
every test module, leaves out every test marked for it and passes the rest.

Cheap by design: the whole suite is collected, and one module of tests of both frameworks
(``tests/test_kinks.py``) is run; the full ``-m "not torch"`` run is ``make test``'s business
on a machine where torch is broken."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import FRAMEWORKS, broken_framework

TESTS = Path(__file__).resolve().parent.parent
OTHER = {fw: next(o for o in FRAMEWORKS if o != fw) for fw in FRAMEWORKS}


def pytest_without(fw, tmp_path, *args):
    env = {**os.environ, **broken_framework(tmp_path, fw)}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-m", f"not {fw}",
                           *args], capture_output=True, text=True, timeout=300, cwd=TESTS.parent, env=env)


# The run needs the other framework: a test of it is left out where that one is broken.
BROKEN = [pytest.param(fw, marks=getattr(pytest.mark, OTHER[fw]), id=f"{fw}-broken") for fw in OTHER]


@pytest.mark.parametrize("fw", BROKEN)
def test_every_module_collects_without_the_broken_framework(fw, tmp_path):
    r = pytest_without(fw, tmp_path, "--collect-only", str(TESTS))
    summary = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
    assert r.returncode == 0, f"[{fw} broken] collection: exit {r.returncode}:\n{r.stdout[-3000:]}{r.stderr}"
    m = re.match(r"(\d+)/(\d+) tests collected \((\d+) deselected\)", summary)
    assert m and int(m[1]) > 0 and int(m[3]) > 0, f"[{fw} broken] selected none or all: {summary!r}"


@pytest.mark.parametrize("fw", BROKEN)
def test_the_tests_of_the_other_framework_pass_without_the_broken_one(fw, tmp_path):
    r = pytest_without(fw, tmp_path, str(TESTS / "test_kinks.py"))
    summary = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
    assert r.returncode == 0, f"[{fw} broken] -m 'not {fw}' failed (exit {r.returncode}):\n{r.stdout[-3000:]}"
    m = re.match(r"(\d+) passed, (\d+) deselected", summary)
    assert m and int(m[1]) > 0 and int(m[2]) > 0, f"[{fw} broken] ran none or all: {summary!r}"
