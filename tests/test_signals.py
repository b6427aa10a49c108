"""Signals and processes: Ctrl-C and SIGTERM end ``crosscheck run`` and its helper within
2 s, with no traceback, exit 130 or 143 and no report; no process outlives any run.

Each test starts a real ``crosscheck`` in a session of its own and looks at every process
of that session in /proc, the helper and multiprocessing's resource tracker included.
"""

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import broken_framework

from crosscheck.cli import EXIT_ENV, EXIT_OK

REPO = Path(__file__).resolve().parent.parent


def start(*args, env=None):
    return subprocess.Popen([sys.executable, "-m", "crosscheck", *args], cwd=REPO, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def end(p):
    """Whatever is left of ``p``'s process group killed, ``p`` reaped: a test's cleanup, so
    that a helper left running fails the test instead of holding its pipes open for ever."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(p.pid, signal.SIGKILL)
    p.wait()


def session(sid):
    """{pid: (state, command line)} of every process, zombies included, of session ``sid``."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:          # gone meanwhile
            continue
        state, _ppid, _pgrp, sid_ = stat[stat.rindex(")") + 2:].split()[:4]
        if int(sid_) == sid:
            found[int(entry)] = (state, cmdline)
    return found


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_until_the_helper_computes(p, seconds=0.3, timeout=60):
    """Until the helper process has computed for ``seconds``: the run is busy in both."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert p.poll() is None, f"crosscheck ended early, exit {p.returncode}: {p.stderr.read()}"
        helpers = [pid for pid, (_, cmd) in session(p.pid).items() if "spawn_main" in cmd]
        try:
            if helpers and cpu_seconds(helpers[0]) >= seconds:
                return helpers[0]
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"no helper computing after {timeout} s: {session(p.pid)}")


# Ctrl-C on a terminal signals the whole process group; `kill` signals the main process alone.
HOW = {"SIGINT-to-the-group": (signal.SIGINT, os.killpg, 130),
       "SIGTERM-to-the-main-process": (signal.SIGTERM, os.kill, 143),
       "SIGINT-to-the-main-process": (signal.SIGINT, os.kill, 130)}


@pytest.mark.parametrize("sig,send,code", HOW.values(), ids=HOW.keys())
def test_a_signal_ends_the_run_and_its_helper_within_2_s(sig, send, code, tmp_path):
    out = tmp_path / "report.json"
    p = start("run", "relu", "--epochs", "200000", "--json", str(out))
    try:
        helper = wait_until_the_helper_computes(p)
        sent = time.monotonic()
        send(p.pid, sig)
        p.wait(timeout=10)
        elapsed = time.monotonic() - sent
        left = session(p.pid)
        end(p)   # what outlived it, before reading its pipes (a helper left running holds them)
        stdout, stderr = p.communicate(timeout=30)
    finally:
        end(p)
    name = signal.Signals(sig).name
    assert p.returncode == code, f"{name}: exit {p.returncode}, expected {code}; stderr {stderr!r}"
    assert elapsed < 2.0, f"{name}: crosscheck took {elapsed:.2f} s to end, expected < 2 s"
    assert not left, f"{name}: processes outlived crosscheck (helper was {helper}): {left}"
    assert stderr == f"crosscheck: interrupted ({name})\n", f"{name}: stderr {stderr!r}"
    assert stdout == "", f"{name}: stdout {stdout!r}"
    assert list(tmp_path.iterdir()) == [], f"{name}: wrote {list(tmp_path.iterdir())}"


@pytest.mark.parametrize("args,code", [pytest.param(["run", "sgd_linear", "--framework", "jax"], EXIT_OK,
                                                    marks=pytest.mark.jax),
                                       (["run", "sgd_linear", "--framework", "nope"], 2)],
                         ids=["normal-run", "usage-error"])
def test_no_process_outlives_a_run(args, code):
    p = start(*args)
    stdout, stderr = p.communicate(timeout=300)
    left = session(p.pid)
    assert p.returncode == code, f"{args}: exit {p.returncode}, expected {code}; stderr {stderr!r}"
    assert not left, f"{args}: processes outlived crosscheck: {left}"


def test_no_process_outlives_an_environment_error(tmp_path):
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text("raise ImportError('broken on purpose (test)')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    p = subprocess.Popen([sys.executable, "-m", "crosscheck", "run", "relu", "--epochs", "20000"], cwd=REPO,
                         env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.communicate(timeout=300)
    left = session(p.pid)
    assert p.returncode == EXIT_ENV, f"exit {p.returncode}, expected {EXIT_ENV}"
    assert not left, f"the helper (busy with JAX) outlived the error: {left}"


def run_signalling_itself(sent, *args, env):
    """``crosscheck <args>``, whose own code sends it SIGTERM and writes the time to ``sent``:
    its exit code, its stderr, the seconds from the signal to its end, and what outlived it."""
    p = start(*args, env=env)
    try:
        p.wait(timeout=60)
        ended = time.monotonic()   # CLOCK_MONOTONIC: one clock for every process (Linux)
        left = session(p.pid)
        end(p)   # what outlived it, before reading its pipes (a helper left running holds them)
        _, stderr = p.communicate(timeout=30)
    finally:
        end(p)
    assert sent.exists(), f"nothing sent the signal (exit {p.returncode}); stderr {stderr!r}"
    return p.returncode, stderr, ended - float(sent.read_text()), left


def assert_ended_on_sigterm(code, stderr, elapsed, left, *untouched):
    """Exit 143 with one line, within 2 s of the signal, nothing left running or written."""
    assert code == 143, f"exit {code}, expected 143; stderr {stderr!r}"
    assert stderr == "crosscheck: interrupted (SIGTERM)\n", f"stderr {stderr!r}"
    assert elapsed < 2.0, f"crosscheck took {elapsed:.2f} s to end, expected < 2 s"
    assert not left, f"processes outlived crosscheck: {left}"
    for folder in untouched:
        assert list(folder.iterdir()) == [], f"left in {folder}: {list(folder.iterdir())}"


# A torch whose import is signalled half-way: the module sends SIGTERM to its own process
# and goes on for a while (a sleep, where Python would run the handler), noting any
# exception raised inside it.
SIGNALLED_IMPORT = "\n".join([
    "import os, signal, time",
    "try:",
    "    open(os.environ['SENT'], 'w').write(repr(time.monotonic()))",
    "    os.kill(os.getpid(), signal.SIGTERM)",
    "    time.sleep(float(os.environ['GOES_ON']))",
    "except BaseException as e:",
    "    open(os.environ['RAISED_INSIDE'], 'w').write(type(e).__name__)",
    "    raise",
])

#: The rest of the import after the signal: shorter than HOLD_S (the kept exception is raised
#: at its end) and far longer (the watchdog ends the run without waiting for it).
GOES_ON = {"import-ends-soon": 0.0, "import-goes-on-for-5-s": 5.0}


@pytest.mark.parametrize("goes_on", GOES_ON.values(), ids=GOES_ON.keys())
def test_a_signal_during_a_frameworks_import_ends_the_run_without_raising_inside_it(goes_on, tmp_path):
    # Raised inside the import, it can meet C++ that calls back into Python (torch's
    # _c10d_init): the process aborts and the helper is left behind (a real torch, about one
    # SIGTERM in six 0.3 s into a run). A long import is not waited for either: the run ends
    # within 2 s, the helper and the spilled records' folder with it.
    raised, sent = tmp_path / "raised-inside", tmp_path / "sent"
    out, tmp = tmp_path / "out" / "report.json", tmp_path / "tmp"
    for folder in (out.parent, tmp, tmp_path / "fake"):
        folder.mkdir()
    env = {**os.environ, **broken_framework(tmp_path / "fake", "torch", body=SIGNALLED_IMPORT),
           "RAISED_INSIDE": str(raised), "SENT": str(sent), "GOES_ON": str(goes_on), "TMPDIR": str(tmp)}
    code, stderr, elapsed, left = run_signalling_itself(sent, "run", "relu", "--json", str(out), env=env)
    assert not raised.exists(), f"{raised.read_text()} raised inside the import; stderr {stderr!r}"
    assert_ended_on_sigterm(code, stderr, elapsed, left, out.parent, tmp)


def test_a_signal_while_the_helper_starts_ends_the_run_and_the_helper(tmp_path):
    # Interrupted while it writes the helper's start, the helper read an end of file and
    # printed a traceback; a helper still being started must be killed all the same.
    # The model (tests/models/big_line_signals_its_helper.py) has more data than a pipe holds,
    # so the start blocks until the helper has read them, and SIGTERM comes 50 ms into it.
    sent, tmp, out = tmp_path / "sent", tmp_path / "tmp", tmp_path / "out" / "report.json"
    for folder in (tmp, out.parent):
        folder.mkdir()
    env = {**os.environ, "SENT": str(sent), "TMPDIR": str(tmp)}
    model = REPO / "tests" / "models" / "big_line_signals_its_helper.py"
    code, stderr, elapsed, left = run_signalling_itself(sent, "run", str(model), "--json", str(out), env=env)
    assert_ended_on_sigterm(code, stderr, elapsed, left, out.parent, tmp)


HELD_QUEUES = """
from crosscheck.reporting.report import Workers
w = Workers(2)
queues = (w.pool._call_queue, w.pool._result_queue)   # a frame still holding the queues
w.__exit__(None)
print("ended", flush=True)
"""


def test_the_helpers_end_releases_its_semaphores_while_a_frame_still_holds_its_queues():
    # The watchdog may end the helper while the main thread is inside the helper's start, its
    # frames holding the queues: the semaphores must not wait for the queues to be collected,
    # or the resource tracker, stopped with them registered, warns of leaked ones on stderr
    # (seen once in make test, in the helper-start test above).
    r = subprocess.run([sys.executable, "-c", HELD_QUEUES], cwd=REPO, capture_output=True, text=True,
                       timeout=60)
    assert (r.returncode, r.stdout) == (0, "ended\n"), f"exit {r.returncode}; stdout {r.stdout!r}"
    assert r.stderr == "", f"stderr {r.stderr!r}"


STUCK = """
import sys
from crosscheck.cli import Interrupted, _OnSignals
import jax, jax.numpy as jnp

loop = jax.jit(lambda x: jax.lax.fori_loop(0, 2 * 10**9, lambda i, v: v * 1.0000001 + 1e-9, x))
compiled = loop.lower(jnp.float32(1.0)).compile()
with _OnSignals() as signals:
    signals.arm()
    print("inside", flush=True)
    compiled(jnp.float32(1.0)).block_until_ready()   # minutes, in one compiled call
"""


@pytest.mark.jax
def test_a_signal_inside_one_long_compiled_call_still_ends_within_2_s():
    # Python runs a handler only between bytecodes; with --jobs 1 the main process may be
    # inside one long JAX call. The watchdog ends it after _OnSignals.GRACE_S.
    p = subprocess.Popen([sys.executable, "-c", STUCK], cwd=REPO, start_new_session=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline() == "inside\n", p.stderr.read()
        time.sleep(0.2)
        sent = time.monotonic()
        os.kill(p.pid, signal.SIGINT)
        p.wait(timeout=10)
        elapsed = time.monotonic() - sent
        _, stderr = p.communicate(timeout=30)
    finally:
        end(p)
    assert p.returncode == 130, f"exit {p.returncode}, expected 130; stderr {stderr!r}"
    assert elapsed < 2.0, f"took {elapsed:.2f} s to end, expected < 2 s"
    assert "Traceback" not in stderr and len(stderr.splitlines()) == 1, f"stderr {stderr!r}"
