"""Never a false pass, never a crash on bad input: what trying the tool as a new user found
(issue 22), each through the command line or the Python API as a user calls them.

The model files live in ``tests/models/``; each runs in well under a second.
"""

import os
from pathlib import Path

import numpy as np
import pytest
from helpers import cli

import crosscheck
from crosscheck.cli import EXIT_MISMATCH, EXIT_USAGE
from crosscheck.declaring.model import Model, load

MODELS = Path(__file__).resolve().parent / "models"
LINE_FIT = str(MODELS / "line_fit.py")


def model(name: str) -> Model:
    (found,) = load(str(MODELS / f"{name}.py"))
    return found


# ---------------------------------------------------------------------------- check()'s arguments
# (keyword, value, the command line's option and text, what the one line says)
BAD_ARGUMENTS = [
    ("lr", float("nan"), ["--lr", "nan"], "lr must be a positive finite number, got nan"),
    ("lr", float("inf"), ["--lr", "inf"], "lr must be a positive finite number, got inf"),
    ("lr", -0.1, ["--lr", "-0.1"], "lr must be a positive finite number, got -0.1"),
    ("epochs", 0, ["--epochs", "0"], "epochs must be a positive integer, got 0"),
    ("epochs", 2.5, ["--epochs", "2.5"], "epochs must be a positive integer, got"),
    ("epochs", "5", None, "epochs must be a positive integer, got '5'"),
]


@pytest.mark.parametrize("keyword, value, option, says", BAD_ARGUMENTS,
                         ids=[f"{a[0]}={a[1]!r}" for a in BAD_ARGUMENTS])
def test_check_refuses_what_the_command_line_refuses(keyword, value, option, says):
    with pytest.raises(ValueError) as caught:
        crosscheck.check(model("line_fit"), **{keyword: value})
    message = str(caught.value)
    assert says in message and "\n" not in message, f"[check({keyword}={value!r})] said {message!r}"


@pytest.mark.parametrize("keyword, value, option, says", [a for a in BAD_ARGUMENTS if a[2]],
                         ids=[f"{a[0]}={a[1]!r}" for a in BAD_ARGUMENTS if a[2]])
def test_the_command_line_says_the_same(capsys, keyword, value, option, says):
    code, out, err = cli(capsys, "run", LINE_FIT, *option)
    assert code == EXIT_USAGE, f"[run {' '.join(option)}] exit {code}: {err}"
    assert err.count("\n") == 1 and says.split(" ", 1)[1] in err, f"[run {' '.join(option)}] said {err!r}"
    assert out == "", f"[run {' '.join(option)}] wrote {out!r}"


@pytest.mark.parametrize("frameworks", [("tensorflow",), (), 3, ["torch", "mxnet"]], ids=repr)
def test_check_names_the_frameworks_it_takes(frameworks):
    with pytest.raises(ValueError, match="frameworks must be one or more of torch, jax"):
        crosscheck.check(model("line_fit"), frameworks=frameworks)


@pytest.mark.torch
def test_a_framework_named_alone_is_that_framework():
    result = crosscheck.check(model("line_fit"), frameworks="torch")
    ran = list(result.verdicts)
    assert ran == ["torch"], f"[line_fit] frameworks='torch' checked {ran}"
    assert result.agree, f"[line_fit/torch] {result.first_divergence}"


# ---------------------------------------------------------------------------- no vacuous pass
@pytest.mark.torch
@pytest.mark.jax
def test_a_nan_manual_gradient_is_a_wrong_manual_gradient_at_its_first_step(cli_json):
    code, report, _ = cli_json(str(MODELS / "nan_gradient.py"))
    assert code == EXIT_MISMATCH, f"[nan_gradient] exit {code}"
    for fw, got in report["cases"]["nan_gradient"]["frameworks"].items():
        first = got["first_divergence"]
        assert got["failed"] == "local", f"[nan_gradient/{fw}] failed {got['failed']!r}: {first}"
        assert (first["step"], first["parameter"]) == (0, "b"), f"[nan_gradient/{fw}] blamed {first}"
        assert first["expected"] == "nan", f"[nan_gradient/{fw}] the manual value {first['expected']!r}"
        said = first["explanation"]
        assert (said["kind"], said["elements"]) == ("non_finite", [[0]]), f"[nan_gradient/{fw}] {said}"
        assert "the manual value is NaN at (0,)" in said["text"], f"[nan_gradient/{fw}] {said['text']}"


@pytest.mark.torch
@pytest.mark.jax
def test_a_run_that_compares_no_step_never_agrees(cli_json):
    code, report, _ = cli_json(str(MODELS / "sqrt_at_zero.py"))
    assert code == EXIT_MISMATCH, f"[sqrt_at_zero] exit {code}"
    for fw, got in report["cases"]["sqrt_at_zero"]["frameworks"].items():
        assert not got["agree"] and got["failed"] == "nothing compared", (
            f"[sqrt_at_zero/{fw}] agree {got['agree']}, failed {got['failed']!r}")
        assert got["local"]["steps"] == 0 and not got["local"]["agree"], f"[sqrt_at_zero/{fw}] {got['local']}"


@pytest.mark.torch
def test_a_run_that_compares_no_step_says_so_in_the_table(capsys):
    code, out, _ = cli(capsys, "run", str(MODELS / "sqrt_at_zero.py"), "--framework", "torch")
    row = next(line for line in out.splitlines() if line.startswith("sqrt_at_zero"))
    assert "MISMATCH (nothing compared)" in row and "0.00e+00" not in row, f"[sqrt_at_zero/torch] {row}"


def test_shapes_that_differ_for_a_reason_are_allowed():
    # Class scores (m, C) against integer labels (m,) do not broadcast: the loss means them.
    x, labels = np.eye(3), np.array([0.0, 2.0, 1.0])

    def forward(xp, p, x):
        return x @ p["W"]                                  # (m, C)

    def loss(xp, scores, y):
        picked = xp.sum(scores * (xp.reshape(y, (-1, 1)) == xp.arange(3.0)), axis=1)   # (m,)
        return -xp.mean(picked)

    def backward(p, x, y):
        return {"W": -x.T @ (y[:, None] == np.arange(3.0)) / 3}

    m = Model(name="labels", x=x, y=labels, init={"W": np.zeros((3, 3))}, forward=forward, loss=loss,
              backward=backward, lr=0.1, epochs=2)
    m.validate()   # raises ModelError if the shapes were refused


# ---------------------------------------------------------------------------- no crash
@pytest.mark.jax
def test_a_python_if_in_the_forward_is_said_as_jax_says_it_with_the_right_hint(capsys):
    spec = str(MODELS / "python_if_on_traced.py")
    code, out, err = cli(capsys, "run", spec, "--framework", "jax")
    assert code == EXIT_USAGE and err.count("\n") == 1, f"[python_if_on_traced/jax] exit {code}: {err}"
    where = os.path.relpath(spec)   # the file as a user names it, from where they are
    assert err.startswith(f"crosscheck: error: {where}:14: [python_if_on_traced]"), err
    for says in ("TracerBoolConversionError", "branch with xp.where"):
        assert says in err, f"[python_if_on_traced/jax] {says!r} missing from {err!r}"
    for wrong in ("not np", "https://"):   # the other hint, and a URL cut off mid-way
        assert wrong not in err, f"[python_if_on_traced/jax] {wrong!r} in {err!r}"


# ---------------------------------------------------------------------------- nothing lost
#: Starts ``python -m crosscheck`` with the largest file it may write limited (a disk that
#: fills up, for real: the kernel fails a write past it), without a fork-time hook in this
#: threaded process.
LIMITED = ("import os, resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
           "n = int(sys.argv[1]); resource.setrlimit(resource.RLIMIT_FSIZE, (n, n)); "
           "os.execv(sys.executable, [sys.executable, '-m', 'crosscheck', *sys.argv[2:]])")


def run_process(*argv: str, file_limit: int | None = None, cwd: Path | None = None):
    """``crosscheck *argv`` as a process of its own (``file_limit``: the largest file, in
    bytes, it may write)."""
    import subprocess
    import sys

    start = [sys.executable, "-m", "crosscheck"] if file_limit is None else \
        [sys.executable, "-c", LIMITED, str(file_limit)]
    return subprocess.run([*start, *argv], capture_output=True, text=True, cwd=cwd, timeout=120)


@pytest.mark.torch
def test_a_models_prints_never_reach_the_json_on_stdout():
    # The helper process runs the reference (the printing backward) on its inherited stdout.
    done = run_process("run", str(MODELS / "printing_backward.py"), "--framework", "torch", "--json", "-")
    import json

    report = json.loads(done.stdout)   # fails on any line the model printed
    assert done.returncode == 0 and "printing_backward" in report["cases"], done.stderr
    assert "debug: backward at w" in done.stderr, "[printing_backward] its prints are lost, not on stderr"


@pytest.mark.parametrize("options", [("--json", "a.json", "--html", "a.json"),
                                     ("--json", "link.json", "--html", "a.html"),
                                     ("--json", "plots/line_fit_loss.png", "--plots", "plots")],
                         ids=["same-path", "through-a-link", "inside-the-plots"])
def test_two_outputs_naming_one_file_is_a_usage_error(capsys, tmp_path, monkeypatch, options):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.html").write_text("previous")
    (tmp_path / "link.json").symlink_to(tmp_path / "a.html")
    code, out, err = cli(capsys, "run", LINE_FIT, *options)
    assert code == EXIT_USAGE and "both name" in err, f"[{' '.join(options)}] exit {code}: {err}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.html", "link.json"], (
        f"[{' '.join(options)}] wrote {sorted(p.name for p in tmp_path.iterdir())}")
    assert (tmp_path / "a.html").read_text() == "previous", f"[{' '.join(options)}] overwrote a.html"


@pytest.mark.torch
def test_devices_are_written_to_directly(capsys):
    code, out, err = cli(capsys, "run", LINE_FIT, "--framework", "torch", "--json", "/dev/null",
                         "--html", "/dev/null")
    assert code == 0, f"[line_fit] --json /dev/null --html /dev/null: exit {code}: {err}"
    assert "wrote JSON /dev/null" in out, f"[line_fit] {out.splitlines()[-1]}"


@pytest.mark.torch
@pytest.mark.parametrize("outputs", [("--json", "out/r.json"), ("--json", "out/r.json", "--plots", "out")],
                         ids=["json", "json-and-plots"])
def test_a_full_disk_fails_after_the_verdicts_and_keeps_the_previous_files(tmp_path, outputs):
    out = tmp_path / "out"
    out.mkdir()
    previous = {name: f"previous {name}" for name in ("r.json", "line_fit_loss.png")}
    for name, text in previous.items():
        (out / name).write_text(text)
    done = run_process("run", LINE_FIT, "--framework", "torch", "--jobs", "1", *outputs,
                       file_limit=1000, cwd=tmp_path)
    assert done.returncode == 3, f"[line_fit] {' '.join(outputs)} on a full disk: exit {done.returncode}"
    assert "line_fit       torch" in done.stdout, f"[line_fit] no verdicts before the error:\n{done.stdout}"
    assert done.stderr.startswith("crosscheck: error: cannot write ") and "File too large" in done.stderr, (
        f"[line_fit] {done.stderr!r}")
    assert done.stderr.count("\n") == 1, f"[line_fit] not one line: {done.stderr!r}"
    found = {p.name: p.read_text() for p in out.iterdir()}
    assert found == previous, f"[line_fit] {' '.join(outputs)}: the folder holds {sorted(found)}, " \
                              "not the previous files as they were"


@pytest.mark.torch
def test_a_named_pipe_is_written_to_directly(capsys, tmp_path):
    import json
    import os
    import threading

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_text()), daemon=True)
    reader.start()
    code, out, err = cli(capsys, "run", LINE_FIT, "--framework", "torch", "--json", str(fifo))
    reader.join(10)
    assert code == 0 and got, f"[line_fit] --json FIFO: exit {code}, read {got}: {err}"
    assert "line_fit" in json.loads(got[0])["cases"], "[line_fit] the FIFO did not carry the report"
