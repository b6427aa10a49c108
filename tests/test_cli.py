"""The command line: listing, transcripts, help, bad input, environment errors."""

import os
import subprocess
import sys

import pytest

from crosscheck import cases, runner
from crosscheck.cli import EXIT_ENV, EXIT_MISMATCH, EXIT_OK, EXIT_USAGE, main


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


def _broken(tmp_path, module):
    (tmp_path / module).mkdir()
    (tmp_path / module / "__init__.py").write_text(
        f"raise ImportError('{module} is broken on purpose (test)')\n")
    return {"PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}


# torch is imported in this process, JAX in the helper: both paths end in one line and exit 3.
@pytest.mark.parametrize("module", ["torch", "jax"])
def test_a_framework_that_cannot_be_imported_exits_3_in_one_line(module, tmp_path):
    r = run_cli("run", "sgd_linear", env=_broken(tmp_path, module))
    assert r.returncode == EXIT_ENV, f"broken {module}: exit {r.returncode}, expected {EXIT_ENV}: {r.stderr}"
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, f"broken {module}: stderr {r.stderr!r}"
    assert lines[0].startswith(f"crosscheck: error: cannot import {module}: ImportError: "
                               f"{module} is broken on purpose"), lines[0]
    assert r.stdout == "", f"broken {module}: stdout {r.stdout!r}"


@pytest.mark.parametrize("where", [["--debug", "run"], ["run", "--debug"]], ids=["before", "after"])
def test_debug_shows_the_traceback(where, tmp_path):
    r = run_cli(*where, "sgd_linear", "--jobs", "1", env=_broken(tmp_path, "torch"))
    assert r.returncode == EXIT_ENV, f"{where}: exit {r.returncode}: {r.stderr}"
    assert "Traceback (most recent call last)" in r.stderr and "torch is broken on purpose" in r.stderr, \
        f"{where}: no traceback in {r.stderr!r}"
    assert r.stderr.strip().splitlines()[-1].startswith("crosscheck: error: cannot import torch"), r.stderr


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


def test_explain_header_and_summary_count_the_lines_that_agree(capsys):
    code, lines, verdicts, header = _explain(capsys, "sgd_two_relu", "--step", "7")
    n = len(verdicts)
    assert code == EXIT_OK and n > 0 and set(verdicts) == {"agree"}, (code, verdicts)
    assert header == [f"verdict: {n} of {n} checked lines agree"], header
    assert lines[-1] == f"{n} of {n} checked lines agree", f"summary line {lines[-1]!r}"


def test_explain_header_and_summary_say_mismatch_when_the_lines_do(capsys):
    # Two outputs: MSE.fp divides by m, MSE.f by m*o, so every manual gradient is twice autograd's.
    code, lines, verdicts, header = _explain(capsys, "relu_class", "--sizes", "1,2,2", "--epochs", "5")
    n, bad = len(verdicts), verdicts.count("MISMATCH")
    assert code == EXIT_MISMATCH and bad > 0, (code, verdicts)
    summary = f"{bad} of {n} checked lines MISMATCH: first dL_dO"
    assert header == [f"verdict: {summary}"], f"header {header}, lines say {verdicts}"
    assert lines[-1] == summary, f"summary line {lines[-1]!r}, expected {summary!r}"
