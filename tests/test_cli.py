"""The command line: listing, transcripts, help, bad input, environment errors."""

import os
import subprocess
import sys

import pytest
from helpers import broken_framework

from crosscheck.cli import EXIT_ENV, EXIT_MISMATCH, EXIT_OK, EXIT_USAGE, main
from crosscheck.declaring import cases
from crosscheck.running import runner


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "crosscheck", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **(env or {})})


def test_list_names_every_case(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for c in cases.CASES.values():
        assert c.name in out and c.document in out, f"[{c.name}] missing from 'crosscheck list'"


def test_transcript_prints_the_document_format(capsys):
    assert main(["transcript", "sgd_linear"]) == 0
    assert "Predicted value for input 7 is 13.786374872617987" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["transcript", "nope"], ["frob"], ["list", "--bogus"]],
                         ids=["unknown-case", "unknown-command", "unknown-option"])
def test_bad_input_is_one_line_exit_2(argv):
    r = run_cli(*argv)
    assert r.returncode == EXIT_USAGE, f"{argv}: exit {r.returncode}"
    assert r.stdout == "", f"{argv}: stdout {r.stdout!r}"
    assert len(r.stderr.strip().splitlines()) == 1, f"{argv}: stderr {r.stderr!r}"
    assert "Traceback" not in r.stderr


def test_unknown_case_names_the_known_cases():
    r = run_cli("transcript", "nope")
    assert all(name in r.stderr for name in cases.CASES), r.stderr


COMMANDS = ["list", "transcript", "run", "explain", "kinks", "diff"]


def test_no_arguments_prints_the_help_and_exits_2():
    # A missing command is a usage error (exit 2, as Click >= 8.2 does); the help goes to
    # stderr with it, so that stdout stays empty.
    r = run_cli()
    assert r.returncode == EXIT_USAGE, f"plain crosscheck: exit {r.returncode}, expected {EXIT_USAGE}"
    assert r.stdout == "", f"plain crosscheck wrote to stdout: {r.stdout!r}"
    assert r.stderr.startswith("usage: crosscheck"), r.stderr
    missing = [c for c in COMMANDS if f"\n    {c} " not in r.stderr and f"\n    {c}\n" not in r.stderr]
    assert not missing, f"commands missing from the help: {missing}\n{r.stderr}"


def test_help_says_what_the_tool_does(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0, f"--help: exit {exit_.value.code}"
    for words in ("Cross-check hand-written NumPy backpropagation", "PyTorch and JAX autograd",
                  "your own models",
                  "exit codes: 0", "3 an environment or internal error"):
        assert words in " ".join(out.split()), f"{words!r} not in the help:\n{out}"


# torch 2.14.1 without its CUDA libraries, as in issue 11.
NO_CUDNN = "raise ImportError('libcudnn.so.9: cannot open shared object file: No such file or directory')"
# A torch that imports but fails at its first computation (a CUDA driver it cannot start).
FAILS_ON_USE = ("float64 = 'float64'\n"
                "def ones(*args, **kwargs):\n"
                "    raise RuntimeError('CUDA driver initialization failed, you might not have a CUDA gpu.')")


def _one_error_line(r, what):
    lines = r.stderr.strip().splitlines()
    assert r.returncode == EXIT_ENV, f"{what}: exit {r.returncode}, expected {EXIT_ENV}: {r.stderr}"
    assert len(lines) == 1 and "Traceback" not in r.stderr, f"{what}: stderr {r.stderr!r}"
    assert r.stdout == "", f"{what}: stdout {r.stdout!r}"
    return lines[0]


# torch is imported in this process, JAX in the helper: both paths end in one line and exit 3.
# With JAX broken, torch must work: its error would come first.
@pytest.mark.parametrize("module", ["torch", pytest.param("jax", marks=pytest.mark.torch)])
def test_a_framework_that_cannot_be_imported_exits_3_in_one_line(module, tmp_path):
    r = run_cli("run", "sgd_linear", env=broken_framework(tmp_path, module))
    line = _one_error_line(r, f"broken {module}")
    other = "jax" if module == "torch" else "torch"
    assert line.startswith(f"crosscheck: error: cannot import {module} 2.14.1: ImportError: "
                           f"{module} is broken on purpose"), line
    assert f"--framework {other} checks without it" in line, line


def test_torch_without_its_cuda_libraries_exits_3_naming_it_and_its_version(tmp_path):
    r = run_cli("run", env=broken_framework(tmp_path, "torch", body=NO_CUDNN))
    line = _one_error_line(r, "no libcudnn")
    assert line.startswith("crosscheck: error: cannot import torch 2.14.1: ImportError: libcudnn.so.9: "
                           "cannot open shared object file"), line


def test_a_framework_that_fails_on_first_use_exits_3_in_one_line(tmp_path):
    env = broken_framework(tmp_path, "torch", body=FAILS_ON_USE)
    r = run_cli("run", "sgd_linear", "--jobs", "1", env=env)
    line = _one_error_line(r, "torch failing on first use")
    assert line.startswith("crosscheck: error: torch 2.14.1 fails on first use: RuntimeError: CUDA driver "
                           "initialization failed"), line


@pytest.mark.jax
@pytest.mark.parametrize("args", [["run", "sgd_linear"], ["kinks"]], ids=["run", "kinks"])
def test_the_other_framework_is_still_checked_with_a_broken_torch(args, tmp_path):
    env = broken_framework(tmp_path, "torch", body=NO_CUDNN)
    line = _one_error_line(run_cli(*args, env=env), f"{args} with torch broken")
    assert line.startswith("crosscheck: error: cannot import torch 2.14.1"), f"{args}: {line}"
    r = run_cli(*args, "--framework", "jax", env=env)
    assert r.returncode == EXIT_OK, f"{args} --framework jax: exit {r.returncode}, expected 0: {r.stderr}"
    assert "torch" not in r.stdout, f"{args} --framework jax names torch:\n{r.stdout}"


@pytest.mark.parametrize("where", [["--debug", "run"], ["run", "--debug"]], ids=["before", "after"])
def test_debug_shows_the_traceback(where, tmp_path):
    r = run_cli(*where, "sgd_linear", "--jobs", "1", env=broken_framework(tmp_path, "torch"))
    assert r.returncode == EXIT_ENV, f"{where}: exit {r.returncode}: {r.stderr}"
    assert "Traceback (most recent call last)" in r.stderr and "torch is broken on purpose" in r.stderr, \
        f"{where}: no traceback in {r.stderr!r}"
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("crosscheck: error: cannot import torch 2.14.1"), r.stderr


def test_an_unexpected_exception_exits_3_in_one_line(monkeypatch, capsys):
    def broken(*args, **kwargs):
        raise ZeroDivisionError("planted")

    monkeypatch.setattr(runner, "run", broken)
    assert main(["run", "sgd_linear", "--jobs", "1"]) == EXIT_ENV
    err = capsys.readouterr().err
    assert err == ("crosscheck: error: internal error: ZeroDivisionError: planted "
                   "(--debug shows the traceback)\n"), repr(err)
    assert main(["--debug", "run", "sgd_linear", "--jobs", "1"]) == EXIT_ENV
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err and 'raise ZeroDivisionError("planted")' in err, err


def _explain(capsys, *args):
    code = main(["explain", *args])
    lines = capsys.readouterr().out.splitlines()
    verdicts = [line.split()[1] for line in lines if line.startswith("      verdict  ")]
    header = [line for line in lines if line.startswith("verdict: ")]
    return code, lines, verdicts, header


@pytest.mark.torch
@pytest.mark.jax
def test_explain_header_and_summary_count_the_lines_that_agree(capsys):
    code, lines, verdicts, header = _explain(capsys, "sgd_two_relu", "--step", "7")
    n = len(verdicts)
    assert code == EXIT_OK and n > 0 and set(verdicts) == {"agree"}, (code, verdicts)
    assert header == [f"verdict: {n} of {n} checked lines agree"], header
    assert lines[-1] == f"{n} of {n} checked lines agree", f"summary line {lines[-1]!r}"


@pytest.mark.torch
@pytest.mark.jax
def test_explain_header_and_summary_say_mismatch_when_the_lines_do(capsys):
    # Two outputs: MSE.fp divides by m, MSE.f by m*o, so every manual gradient is twice autograd's.
    code, lines, verdicts, header = _explain(capsys, "relu_class", "--sizes", "1,2,2", "--epochs", "5")
    n, bad = len(verdicts), verdicts.count("MISMATCH")
    assert code == EXIT_MISMATCH and bad > 0, (code, verdicts)
    summary = f"{bad} of {n} checked lines MISMATCH: first dL_dO"
    assert header == [f"verdict: {summary}"], f"header {header}, lines say {verdicts}"
    assert lines[-1] == summary, f"summary line {lines[-1]!r}, expected {summary!r}"


@pytest.mark.torch
@pytest.mark.jax
@pytest.mark.parametrize("env,argv,want", [("3", [], 3), ("3", ["--jobs", "1"], 1)],
                         ids=["env", "option-wins"])
def test_crosscheck_jobs_sets_the_processes_where_jobs_is_not_given(env, argv, want, monkeypatch, capsys):
    from crosscheck.reporting import report

    asked = []

    class Spy(report.Workers):
        def __init__(self, jobs, *rest):
            asked.append(jobs)
            super().__init__(1, *rest)   # (one process here: what was asked is the question)

    monkeypatch.setenv("CROSSCHECK_JOBS", env)
    monkeypatch.setattr(report, "Workers", Spy)
    assert main(["run", "sgd_linear", "-q", *argv]) == EXIT_OK
    assert asked == [want], f"CROSSCHECK_JOBS={env} with {argv}: processes asked {asked}, expected {want}"
