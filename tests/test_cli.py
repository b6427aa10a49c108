"""The command line: listing, transcripts and bad input."""

import subprocess
import sys

import pytest

from crosscheck import cases
from crosscheck.cli import EXIT_USAGE, main


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "crosscheck", *args],
                          capture_output=True, text=True, timeout=300)


def test_list_names_every_case(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for c in cases.CASES.values():
        assert c.name in out and c.document in out, f"[{c.name}] missing from 'crosscheck list'"


def test_transcript_prints_the_document_format(capsys):
    assert main(["transcript", "sgd_linear"]) == 0
    assert "Predicted value for input 7 is 13.786374872617987" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["transcript", "nope"], ["frob"], ["list", "--bogus"], []],
                         ids=["unknown-case", "unknown-command", "unknown-option", "no-command"])
def test_bad_input_is_one_line_exit_2(argv):
    r = run_cli(*argv)
    assert r.returncode == EXIT_USAGE, f"{argv}: exit {r.returncode}"
    assert r.stdout == "", f"{argv}: stdout {r.stdout!r}"
    assert len(r.stderr.strip().splitlines()) == 1, f"{argv}: stderr {r.stderr!r}"
    assert "Traceback" not in r.stderr


def test_unknown_case_names_the_known_cases():
    r = run_cli("transcript", "nope")
    assert all(name in r.stderr for name in cases.CASES), r.stderr
