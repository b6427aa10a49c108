"""Long records: an array above ``CROSSCHECK_SPILL_BYTES`` lives in a file and is walked a range
of steps at a time (``record.ranges``). Nothing a report says may depend on where a record
lives or how it is walked: the same cases, every record spilled and walked 4 KiB at a
time, give the very same JSON, in one process and across the helper process."""

import gc
import json
import os
import pickle

import numpy as np
import pytest

from crosscheck.cli import main
from crosscheck.running import record, runner

#: ReLU masks (full batch), per-sample steps, and a plain batch with biases.
CASES = ("relu", "sgd_two_relu", "linear_bias")


@pytest.fixture
def spill_everything(monkeypatch):
    """Every record of a run in a file (here and in a helper process), walked in small ranges.
    (Above 1 KiB: a whole run's arrays, not the one-step records a manual backward keeps.)"""
    monkeypatch.setenv("CROSSCHECK_SPILL_BYTES", "1024")   # read at each array, here and there
    monkeypatch.setattr(record, "CHUNK_BYTES", 4096)


def _run(capsys, *args):
    code = main(["run", *CASES, "--json", "-", *args])
    return code, json.loads(capsys.readouterr().out)


def _first_difference(a, b, where="report"):
    if isinstance(a, dict) and isinstance(b, dict):
        for k in a.keys() | b.keys():
            if a.get(k) != b.get(k):
                return _first_difference(a.get(k), b.get(k), f"{where}.{k}")
    return f"{where}: {a!r} vs {b!r}"


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_a_spilled_run_reports_exactly_what_an_in_memory_run_does(jobs, spill_everything, capsys, cli_json):
    want_code, want, _ = cli_json(*CASES, "--jobs", "1")   # (computed in memory, once per session)
    code, got = _run(capsys, "--jobs", jobs)
    assert code == want_code, f"--jobs {jobs}: exit {code} spilled, {want_code} in memory"
    assert got == want, f"--jobs {jobs}: spilled run differs at {_first_difference(got, want)}"


def test_a_spilled_trajectory_travels_as_its_file(spill_everything):
    traj = runner.run("relu")
    assert isinstance(traj.params["W1"], np.memmap), "SPILL_BYTES 1024 did not spill the parameters"
    data = pickle.dumps(traj)
    arrays = traj.to_arrays().values()
    kept = sum(a.nbytes for a in arrays if not isinstance(a, np.memmap))   # the losses, predictions
    spilled = sum(a.nbytes for a in arrays if isinstance(a, np.memmap))
    assert len(data) < kept + 4096, \
        f"pickled {len(data)} bytes for {kept} bytes in memory and {spilled} in files: files copied"
    bare = traj.grads["W1"]   # as a local check's manual values travel: an array, not a trajectory
    assert len(pickle.dumps(bare)) < 1024 <= bare.nbytes, "a spilled array pickled with its contents"
    back = pickle.loads(data)
    for name in traj.params:
        for group in ("params", "grads"):
            assert np.array_equal(getattr(back, group)[name], getattr(traj, group)[name]), \
                f"[relu] {group}[{name}] changed in transit"


def test_spilled_files_go_with_their_arrays(spill_everything):
    traj = runner.run("sgd_linear")
    files = [a.filename for a in (*traj.params.values(), *traj.grads.values())]
    assert all(os.path.exists(f) for f in files)
    del traj
    gc.collect()
    left = [f for f in files if os.path.exists(f)]
    assert not left, f"files of a collected trajectory remain: {left}"


@pytest.mark.parametrize("steps", [0, 1, 7, 1000])
@pytest.mark.parametrize("row", [1, 24, 4096])
def test_ranges_cover_every_step_once_within_the_chunk_size(steps, row, monkeypatch):
    monkeypatch.setattr(record, "CHUNK_BYTES", 1024)
    a = np.zeros((steps, row), np.uint8)
    seen = [i for s in record.ranges(steps, a) for i in range(s.start, s.stop)]
    assert seen == list(range(steps)), f"{steps} steps of {row} bytes: ranges cover {seen[:20]}..."
    widths = {s.stop - s.start for s in record.ranges(steps, a)}
    assert all(w * row <= max(1024, row) for w in widths), f"{row}-byte rows: ranges of {widths} steps"
