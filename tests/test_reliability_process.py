"""Never a false pass, never a lost result (issue 22), where processes and the environment
are concerned: a helper process killed under a run is said in one line, and a bad
environment variable is a usage error, not a traceback."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import cli
from test_signals import end, session, start

import crosscheck
from crosscheck.cli import EXIT_ENV, EXIT_USAGE
from crosscheck.model import load

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "tests" / "models"
TAKES = "(an integer, 0 or more; 0 keeps every array of a run in a file)"
FOLDER = "('off' disables the cache; any other value is the folder to keep it in)"


# ---------------------------------------------------------------------------- the environment
def a_file(tmp_path):
    (tmp_path / "a-file").write_text("")
    return str(tmp_path / "a-file")


#: A bad value of each variable crosscheck reads, and the line it must be reported in.
BAD = {
    "spill-not-an-integer": ("CROSSCHECK_SPILL_BYTES", lambda tmp: "abc",
                             f"CROSSCHECK_SPILL_BYTES='abc': not a size in bytes {TAKES}"),
    "spill-negative": ("CROSSCHECK_SPILL_BYTES", lambda tmp: "-5",
                       f"CROSSCHECK_SPILL_BYTES='-5': not a size in bytes {TAKES}"),
    "jax-cache-is-a-file": ("CROSSCHECK_JAX_CACHE", a_file,
                            "CROSSCHECK_JAX_CACHE='{value}': is not a folder " + FOLDER),
    "jax-cache-inside-a-file": ("CROSSCHECK_JAX_CACHE", lambda tmp: os.path.join(a_file(tmp), "jax"),
                                "CROSSCHECK_JAX_CACHE='{value}': lies inside {tmp}/a-file, which is not a "
                                "folder " + FOLDER),
}


@pytest.mark.parametrize("variable,value,line", BAD.values(), ids=BAD.keys())
def test_a_bad_environment_variable_is_a_usage_error_in_one_line(variable, value, line, monkeypatch, capsys,
                                                                  tmp_path):
    value = value(tmp_path)
    monkeypatch.setenv(variable, value)
    out = tmp_path / "out" / "report.json"
    code, stdout, stderr = cli(capsys, "run", "sgd_linear", "--json", str(out))
    want = "crosscheck: error: " + line.format(value=value, tmp=tmp_path) + "\n"
    assert code == EXIT_USAGE, f"{variable}={value!r}: exit {code}, expected {EXIT_USAGE}; stderr {stderr!r}"
    assert stderr == want, f"{variable}={value!r}: stderr {stderr!r}, expected {want!r}"
    assert stdout == "", f"{variable}={value!r}: stdout {stdout!r}"
    assert not out.parent.exists(), f"{variable}={value!r}: wrote {out.parent}"


def test_a_bad_environment_variable_stops_a_command_that_runs_no_report(monkeypatch, capsys):
    # explain runs the reference directly, not through a report's runs: the value is checked
    # where a record's array first reads it.
    monkeypatch.setenv("CROSSCHECK_SPILL_BYTES", "abc")
    code, stdout, stderr = cli(capsys, "explain", "sgd_linear")
    want = f"crosscheck: error: CROSSCHECK_SPILL_BYTES='abc': not a size in bytes {TAKES}\n"
    assert (code, stdout, stderr) == (EXIT_USAGE, "", want), \
        f"explain: exit {code}, stdout {stdout!r}, stderr {stderr!r}; expected exit 2 and {want!r}"


@pytest.mark.parametrize("variable,value,line", BAD.values(), ids=BAD.keys())
def test_a_bad_environment_variable_is_a_value_error_from_python(variable, value, line, monkeypatch,
                                                                 tmp_path):
    value = value(tmp_path)
    monkeypatch.setenv(variable, value)
    (model,) = load(str(MODELS / "line_fit.py"))
    with pytest.raises(ValueError) as raised:
        crosscheck.check(model)
    want = line.format(value=value, tmp=tmp_path)
    assert str(raised.value) == want, \
        f"{variable}={value!r}: check() raised {raised.value!r}, expected {want!r}"


def test_importing_crosscheck_never_fails_on_a_bad_environment_variable():
    env = {**os.environ, "CROSSCHECK_SPILL_BYTES": "abc", "CROSSCHECK_JAX_CACHE": sys.executable}
    r = subprocess.run([sys.executable, "-c", "import crosscheck.cli, crosscheck.report, crosscheck.record"],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stderr) == (0, ""), \
        f"importing crosscheck: exit {r.returncode}, stderr {r.stderr!r}"


# ---------------------------------------------------------------------------- the helper process
@pytest.mark.jax
def test_a_killed_helper_is_said_in_one_line(tmp_path):
    # The OOM killer picks the largest process, often the helper: the pool's BrokenProcessPool
    # was reported as an internal error. The model's JAX run stalls in the helper (its
    # forward, traced there, sleeps), so the helper is killed in the middle of a known run.
    stalled = tmp_path / "stalled"
    model = MODELS / "line_fit_stalls_in_the_helper.py"
    p = start("run", str(model), "--framework", "jax", env={**os.environ, "STALLED": str(stalled)})
    try:
        deadline = time.monotonic() + 60
        while not stalled.exists() or not stalled.read_text():
            assert p.poll() is None, f"crosscheck ended early, exit {p.returncode}: {p.stderr.read()}"
            assert time.monotonic() < deadline, f"the helper never ran the model's forward: {session(p.pid)}"
            time.sleep(0.02)
        helper = int(stalled.read_text())
        assert "spawn_main" in session(p.pid).get(helper, ("", ""))[1], \
            f"pid {helper} is not crosscheck's helper: {session(p.pid)}"
        os.kill(helper, signal.SIGKILL)
        stdout, stderr = p.communicate(timeout=30)
        left = session(p.pid)
    finally:
        end(p)
    want = ("crosscheck: error: the helper process died (killed by SIGKILL) while running "
            "line_fit_stalls [jax] (--debug shows the traceback)\n")
    assert p.returncode == EXIT_ENV, f"exit {p.returncode}, expected {EXIT_ENV}; stderr {stderr!r}"
    assert stderr == want, f"stderr {stderr!r}, expected {want!r}"
    assert stdout == "", f"stdout {stdout!r}: a report of a run whose helper died"
    assert not left, f"processes outlived crosscheck: {left}"
