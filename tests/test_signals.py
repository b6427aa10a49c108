"""Signals and processes: Ctrl-C and SIGTERM end ``crosscheck run`` and its helper within
2 s, with no traceback, exit 130 or 143 and no report; no process outlives any run.

Each test starts a real ``crosscheck`` in a session of its own and looks at every process
of that session in /proc, the helper and multiprocessing's resource tracker included.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from crosscheck.cli import EXIT_ENV, EXIT_OK

REPO = Path(__file__).resolve().parent.parent


def start(*args):
    return subprocess.Popen([sys.executable, "-m", "crosscheck", *args], cwd=REPO, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


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
        stdout, stderr = p.communicate()
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
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


STUCK = """
import sys
from crosscheck.cli import Interrupted, _OnSignals
import jax, jax.numpy as jnp

loop = jax.jit(lambda x: jax.lax.fori_loop(0, 2 * 10**9, lambda i, v: v * 1.0000001 + 1e-9, x))
compiled = loop.lower(jnp.float32(1.0)).compile()
with _OnSignals():
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
        _, stderr = p.communicate()
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    assert p.returncode == 130, f"exit {p.returncode}, expected 130; stderr {stderr!r}"
    assert elapsed < 2.0, f"took {elapsed:.2f} s to end, expected < 2 s"
    assert "Traceback" not in stderr and len(stderr.splitlines()) == 1, f"stderr {stderr!r}"
