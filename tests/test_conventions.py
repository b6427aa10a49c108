"""The conventions users of command-line test tools expect (issue 27): --version, -q, -x,
folders searched for model files, the next command under a failure, --help with examples
and exit codes; and in Python a short repr and ``verdicts`` as a property."""

import shutil
from pathlib import Path

import pytest
from helpers import cli

import crosscheck
from crosscheck.cli import EXIT_MISMATCH, EXIT_OK, EXIT_USAGE
from crosscheck.declaring.model import load

REPO = Path(__file__).resolve().parent.parent
PLANTED = REPO / "examples" / "planted_mistake.py"
LINE_FIT = REPO / "tests" / "models" / "line_fit.py"


def test_version_names_the_tool_and_what_it_runs_with(capsys):
    code, out, err = cli(capsys, "--version")
    assert code == EXIT_OK and err == "", f"--version: exit {code}: {err}"
    first, second = out.splitlines()
    assert first == f"crosscheck {crosscheck.__version__}", f"--version: {first!r}"
    assert second.startswith("versions: python ") and "numpy" in second, f"--version: {second!r}"


def test_run_help_has_examples_and_exit_codes():
    from crosscheck.cli import build_parser

    text = build_parser()._subparsers._group_actions[0].choices["run"].format_help()
    for says in ("examples:", "crosscheck run examples/planted_mistake.py", "exit codes: 0",
                 "-x, --exitfirst", "-q, --quiet"):
        assert says in text, f"run --help lacks {says!r}"


@pytest.mark.torch
def test_quiet_prints_the_failures_and_the_summary_only(capsys):
    code, out, err = cli(capsys, "run", str(PLANTED), str(LINE_FIT), "--framework", "torch", "-q")
    lines = out.splitlines()
    assert code == EXIT_MISMATCH, f"-q: exit {code}: {err}"
    assert not [line for line in lines if line.startswith("line_fit")], f"-q printed an agreeing case:\n{out}"
    assert any(line.startswith("planted_mistake torch") for line in lines), f"-q hid the failure:\n{out}"
    assert lines[-1] == "2 cases x 1 framework: 1 agree, 1 mismatch", f"-q: last line {lines[-1]!r}"
    assert not [line for line in lines if line.startswith(("local:", "versions:"))], f"-q:\n{out}"


@pytest.mark.torch
def test_quiet_prints_one_line_when_everything_agrees(capsys):
    code, out, err = cli(capsys, "run", str(LINE_FIT), "--framework", "torch", "-q")
    one_line = "1 case x 1 framework: 1 agree, 0 mismatch\n"
    assert (code, out) == (EXIT_OK, one_line), f"-q: exit {code}: {out!r}"


def _folder(tmp_path: Path) -> Path:
    """A folder of model files as a user keeps them, with what a search must pass over."""
    shutil.copy(PLANTED, tmp_path / "a_planted.py")
    (tmp_path / "sub").mkdir()
    shutil.copy(LINE_FIT, tmp_path / "sub" / "b_line.py")
    (tmp_path / "_private.py").write_text("raise RuntimeError('a _-prefixed file is not searched')\n")
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "x.py").write_text("raise RuntimeError('a hidden folder is not searched')\n")
    (tmp_path / "helper.py").write_text("raise RuntimeError('a file that never mentions the tool')\n")
    (tmp_path / "notes.py").write_text("# uses crosscheck, defines no Model\nVALUE = 1\n")
    return tmp_path


@pytest.mark.torch
def test_a_folder_is_searched_for_model_files(capsys, tmp_path):
    code, out, err = cli(capsys, "run", str(_folder(tmp_path)), "--framework", "torch")
    rows = [line.split()[0] for line in out.splitlines() if line.endswith("agree") or "MISMATCH" in line]
    assert code == EXIT_MISMATCH and rows == ["planted_mistake", "line_fit"], (
        f"run FOLDER: exit {code}, rows {rows}\n{out}{err}")


@pytest.mark.torch
def test_exitfirst_stops_after_the_first_failing_case(capsys, tmp_path):
    code, out, err = cli(capsys, "run", str(_folder(tmp_path)), "--framework", "torch", "-x")
    assert code == EXIT_MISMATCH, f"-x: exit {code}: {err}"
    assert "line_fit" not in out, f"-x ran the case after the first failure:\n{out}"
    assert out.splitlines()[-1].endswith("stopped at the first failing case (-x), 1 of 2 checked"), out


def test_a_folder_without_models_is_a_usage_error(capsys, tmp_path):
    (tmp_path / "notes.py").write_text("# crosscheck Model notes\n")
    code, out, err = cli(capsys, "run", str(tmp_path))
    assert code == EXIT_USAGE and "no file in it defines a crosscheck.Model" in err, f"exit {code}: {err}"


@pytest.mark.torch
@pytest.mark.jax
def test_a_failure_prints_the_command_that_explains_it_and_that_command_runs(capsys):
    code, out, err = cli(capsys, "run", str(PLANTED), "--framework", "torch")
    (next_line,) = [line.strip() for line in out.splitlines() if line.strip().startswith("next: ")]
    command = next_line.removeprefix("next: ")
    want = f"crosscheck explain {PLANTED}:planted_mistake --step 0"
    assert command == want, f"[planted_mistake] {command!r}"
    code, out, err = cli(capsys, *command.split()[1:])
    assert code == EXIT_MISMATCH and "MISMATCH: first dL/db" in out, f"`{command}`: exit {code}\n{out}{err}"


@pytest.mark.torch
def test_a_result_is_short_in_a_repl_and_its_verdicts_a_property():
    (model,) = load(str(PLANTED))
    result = crosscheck.check(model, frameworks="torch")
    shown = repr(result)
    assert len(shown) < 300 and "planted_mistake" in shown and "agree=False" in shown, shown
    assert "local step 0 grad[b]" in shown, shown
    assert result.verdicts["torch"].startswith("MISMATCH (manual backward)"), result.verdicts


@pytest.mark.torch
@pytest.mark.jax
@pytest.mark.parametrize("spec", [str(PLANTED), "relu"], ids=["a-mismatch", "a-chaotic-case"])
def test_the_table_fits_100_columns(capsys, spec):
    code, out, err = cli(capsys, "run", spec, "--lr", "0.02") if spec == "relu" else cli(capsys, "run", spec)
    table = [line for line in out.splitlines() if not line.startswith("versions: ")]
    wide = [line for line in table if len(line) > 100 and "next: crosscheck explain" not in line]
    assert not wide, f"[{spec}] lines wider than 100 columns:\n" + "\n".join(wide)
    assert not [line for line in table if line.startswith("local: ")], f"[{spec}] the legend on every run"


@pytest.mark.torch
def test_data_declared_in_another_dtype_is_noted(capsys, tmp_path):
    import json

    source = LINE_FIT.read_text().replace('x = np.array([[-1.0], [0.0], [1.0], [2.0]])',
                                          'x = np.array([[-1], [0], [1], [2]])')
    assert source != LINE_FIT.read_text(), "the planted edit did not apply"
    (tmp_path / "int_line.py").write_text(source)
    code, out, err = cli(capsys, "run", str(tmp_path / "int_line.py"), "--framework", "torch", "--json", "-")
    notes = json.loads(out)["cases"]["line_fit"]["notes"]
    assert notes == ["x is int64: checked as float64, its values exactly",
                     "y is int64: kept as integers (class labels), as the loss sees them"], \
        f"[line_fit] notes {notes}"
    assert "  note: x is int64" in err, f"[line_fit] the table has no note:\n{err}"


def test_a_script_in_a_folder_that_exits_never_decides_the_exit_code(capsys, tmp_path):
    # A runner script beside the models, without a __main__ guard: importing it exits 0.
    shutil.copy(PLANTED, tmp_path / "model.py")
    (tmp_path / "script.py").write_text("import sys\n\nimport crosscheck\nfrom model import model\n\n"
                                        "print(model.name)   # the Model it would check\nsys.exit(0)\n")
    code, out, err = cli(capsys, "run", str(tmp_path), "--framework", "torch")
    assert code == EXIT_USAGE and "script.py: importing it failed" in err and "sys.exit(0)" in err, (
        f"run FOLDER with a script that exits: exit {code}\n{out}{err}")


@pytest.mark.torch
def test_a_folder_run_says_which_files_it_did_not_import(capsys, tmp_path):
    # A model made by a helper of another file mentions neither crosscheck nor Model.
    (tmp_path / "factory.py").write_text(LINE_FIT.read_text().replace("model = Model(", "def make():\n"
                                                                      "    return Model("))
    shutil.copy(LINE_FIT, tmp_path / "a_line.py")
    (tmp_path / "made.py").write_text("from factory import make\n\nm = make()\n")
    code, out, err = cli(capsys, "run", str(tmp_path), "--framework", "torch", "-q")
    said = [line for line in out.splitlines() if line.startswith("searched ")]
    assert said and "made.py" in said[0] and "name one to check it" in said[0], f"run FOLDER -q:\n{out}"


@pytest.mark.torch
def test_a_model_imported_from_its_neighbour_is_that_files_not_a_second_one(capsys, tmp_path):
    shutil.copy(LINE_FIT, tmp_path / "a_line.py")
    (tmp_path / "b_uses_it.py").write_text("import crosscheck  # noqa\nfrom a_line import model  # noqa\n")
    code, out, err = cli(capsys, "run", str(tmp_path), "--framework", "torch", "--json", "-")
    assert code == EXIT_OK and "two models are named" not in err, f"exit {code}: {err}"


@pytest.mark.torch
def test_exitfirst_still_draws_the_failing_cases_plots(capsys, tmp_path):
    code, out, err = cli(capsys, "run", str(PLANTED), str(LINE_FIT), "--framework", "torch", "-x",
                         "--plots", str(tmp_path / "plots"))
    drawn = sorted(p.name for p in (tmp_path / "plots").iterdir())
    want = ["planted_mistake_errors.png", "planted_mistake_loss.png", "planted_mistake_params.png"]
    assert drawn == want, f"-x --plots drew {drawn}"
