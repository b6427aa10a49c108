"""Never a false pass, never a lost result (issue 22), where processes and the environment
are concerned: a run killed with SIGKILL leaves no process behind, and its folder goes with
the next run; a helper process killed under a run is said in one line; a bad environment
variable is a usage error, not a traceback."""

import fcntl
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import cli
from test_signals import end, session, start, wait_until_the_helper_computes

import crosscheck
from crosscheck.cli import EXIT_ENV, EXIT_OK, EXIT_USAGE
from crosscheck.declaring.model import load
from crosscheck.running import record

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
    "jobs-not-an-integer": ("CROSSCHECK_JOBS", lambda tmp: "two",
                            "CROSSCHECK_JOBS='two': not a number of processes (an integer, 1 or more)"),
    "jobs-zero": ("CROSSCHECK_JOBS", lambda tmp: "0",
                  "CROSSCHECK_JOBS='0': not a number of processes (an integer, 1 or more)"),
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
    code = "import crosscheck.cli, crosscheck.reporting.report, crosscheck.running.record"
    r = subprocess.run([sys.executable, "-c", code],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stderr) == (0, ""), \
        f"importing crosscheck: exit {r.returncode}, stderr {r.stderr!r}"


# ---------------------------------------------------------------------------- the helper process
def alive(sid):
    """The processes of session ``sid`` still running: a zombie has ended, its parent (here
    init, the run's main process having been killed) not having reaped it yet."""
    return {pid: cmd for pid, (state, cmd) in session(sid).items() if state != "Z"}


@pytest.mark.jax
def test_a_run_killed_with_sigkill_leaves_no_process_and_its_folder_goes_with_the_next_run(tmp_path):
    # An OOM kill or a CI runner's hard timeout unwinds nothing: the helper computed on, then
    # blocked for minutes on its results' pipe with the resource tracker beside it, and the
    # run's folder of spilled records stayed in the temporary folder for good.
    tmp = tmp_path / "tmp"   # this test's runs' own temporary folder: only their folders in it
    tmp.mkdir()
    env = {**os.environ, "TMPDIR": str(tmp)}
    p = start("run", "relu", "--epochs", "200000", env=env)
    try:
        helper = wait_until_the_helper_computes(p)
        running = alive(p.pid)
        os.kill(p.pid, signal.SIGKILL)
        killed = time.monotonic()
        p.wait(timeout=10)
        while alive(p.pid) and time.monotonic() - killed < 5:
            time.sleep(0.02)
        elapsed, left = time.monotonic() - killed, alive(p.pid)
        end(p)   # what outlived it, before reading its pipes (a helper left running holds them)
        p.communicate(timeout=30)
    finally:
        end(p)
    trackers = [pid for pid, cmd in running.items() if "resource_tracker" in cmd]
    assert trackers, f"no resource tracker ran beside the helper {helper}: {running}"
    assert not left, f"processes outlived the killed run by {elapsed:.1f} s: {left}"
    assert elapsed < 2.0, f"the helper and the resource tracker took {elapsed:.2f} s to end, expected < 2 s"
    stale = [f.name for f in tmp.iterdir()]
    assert len(stale) == 1 and stale[0].startswith(record.SPILL_PREFIX), f"the killed run left {stale}"

    r = subprocess.run([sys.executable, "-m", "crosscheck", "run", "sgd_linear", "--framework", "jax"],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == EXIT_OK, f"the next run: exit {r.returncode}; stderr {r.stderr!r}"
    left = [f.name for f in tmp.iterdir()]
    assert left == [], f"after the next run, left in the temporary folder: {left}"


def test_only_the_folders_of_dead_runs_are_removed(tmp_path):
    # A folder's run is alive while its owner file is locked; a lock is one open file's, so
    # a second open of the same file here stands for another process's run.
    def folder(name, owner=None):
        path = tmp_path / (record.SPILL_PREFIX + name)
        path.mkdir()
        (path / "spilled.bin").write_bytes(b"\0" * 64)
        if owner is not None:
            (path / record.OWNER).write_text("")
        return path

    live = folder("live", owner=True)
    lock = os.open(live / record.OWNER, os.O_RDWR)
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        dead = folder("dead", owner=True)
        unknown = folder("without-an-owner-file")
        other = tmp_path / "crosscheck-plots-dead"
        other.mkdir()
        removed = record.remove_stale(str(tmp_path))
        kept = sorted(p.name for p in tmp_path.iterdir())
    finally:
        os.close(lock)
    assert removed == [str(dead)], f"removed {removed}, expected only the dead run's {dead}"
    assert kept == sorted(p.name for p in (live, unknown, other)), f"kept {kept}"


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
