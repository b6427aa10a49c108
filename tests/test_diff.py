"""``crosscheck diff OLD.json NEW.json``: each change planted in a copy of one real report.

The report is the session's ``nightly`` run (relu and sgd_two_relu, with the kink table);
every test edits a deep copy of its JSON, so no test runs anything more.
"""

import copy
import json

import pytest

from crosscheck import tolerances
from crosscheck.cli import EXIT_MISMATCH, EXIT_OK, EXIT_USAGE, main


@pytest.fixture
def report(nightly):
    """A fresh copy of the nightly report's JSON, to plant a change in."""
    code, data, err = nightly
    assert data is not None, f"the nightly run wrote no JSON (exit {code}): {err[-2000:]}"
    return copy.deepcopy(data)


def _diff(tmp_path, capsys, old, new, *options):
    """(exit code, stdout, stderr) of ``crosscheck diff`` on the two reports, written as files."""
    paths = []
    for name, data in (("old.json", old), ("new.json", new)):
        (tmp_path / name).write_text(json.dumps(data), encoding="utf-8")
        paths.append(str(tmp_path / name))
    code = main(["diff", *paths, *options])
    out = capsys.readouterr()
    return code, out.out, out.err


def _line(out, *parts):
    """The one output line that holds every part (a change names where, what and both values)."""
    found = [line for line in out.splitlines() if all(p in line for p in parts)]
    assert len(found) == 1, f"expected one line with {parts}, found {found}:\n{out}"
    return found[0]


def test_a_report_against_itself_says_no_change(tmp_path, capsys, report):
    code, out, err = _diff(tmp_path, capsys, report, report)
    assert code == EXIT_OK, f"exit {code}, expected {EXIT_OK}:\n{out}{err}"
    assert out.splitlines()[-1].startswith("no change: "), f"last line should say no change:\n{out}"
    assert "FAIL" not in out and err == "", f"a change found in the same report:\n{out}{err}"


def _jax(r, case="relu"):
    return r["cases"][case]["frameworks"]["jax"]


# Each plant: edit the NEW report -> (expected exit code, the parts its line must name).
def _verdict(r):
    _jax(r).update(agree=False, failed="local")
    return EXIT_MISMATCH, ["FAIL", "relu/jax", "verdict: agree -> MISMATCH (manual backward)"]


def _transcript(r):
    r["cases"]["relu"]["transcript"]["status"] = "MISMATCH"
    return EXIT_MISMATCH, ["FAIL", "relu:", "transcript: match -> MISMATCH"]


def _horizon(r):
    fw = r["cases"]["relu"]["frameworks"]["torch"]
    assert fw["horizon"] is None, f"relu/torch has a horizon already: {fw['horizon']}"
    fw["horizon"] = r["cases"]["relu"]["steps"] // 2
    return EXIT_OK, ["relu/torch", f"horizon: none -> step {fw['horizon']}"]


def _reference_dynamics(r):
    d = r["cases"]["relu"]["dynamics"]
    old = f"{d['kind']}, period {d['period']}"
    d.update(kind="converging", period=None)
    return EXIT_OK, ["relu:", f"reference's dynamics: {old} -> converging"]


def _framework_dynamics(r):
    d = _jax(r, "sgd_two_relu")["dynamics"]
    assert d["period"] is None, f"sgd_two_relu/jax has a period already: {d}"
    old = d["kind"]
    d.update(kind="oscillating", period=2)
    return EXIT_OK, ["sgd_two_relu/jax", f"dynamics: {old} -> oscillating, period 2"]


def _dead_units(r):
    (unit,) = r["cases"]["relu"]["dead_units"]
    first = min(unit["from_step"].values())
    unit["from_step"] = {k: v + 1 for k, v in unit["from_step"].items()}
    off = f"{unit['name']} off on sample(s) {unit['samples']} from step"
    return EXIT_OK, ["relu:", f"reference's dead units: {off} {first} -> {off} {first + 1}"]


def _version(r):
    old = r["versions"]["jax"]
    r["versions"]["jax"] = f"{old}.post1-planted"
    return EXIT_OK, [f"versions: jax {old} -> {old}.post1-planted"]


def _kink_convention(r):
    row = next(k for k in r["kinks"] if k["framework"] == "torch" and k["agrees"])
    row.update(at_zero=0.5, agrees=False)
    return EXIT_MISMATCH, ["FAIL", "kink table", f"torch {row['spelling']}", "d/dx at 0 = 0, same as",
                           "-> d/dx at 0 = 0.5, NOT the reference's"]


def _kink_table_missing(r):
    r["kinks"] = None
    return EXIT_OK, ["kink table: not in NEW"]


# A case or framework the nightly no longer checks fails it, as a flipped verdict does; one it
# checks anew is a note.
def _case_missing(r):
    del r["cases"]["sgd_two_relu"]
    return EXIT_MISMATCH, ["FAIL", "sgd_two_relu: only in OLD", "NEW no longer checks it"]


def _framework_missing(r):
    del r["cases"]["relu"]["frameworks"]["jax"]
    return EXIT_MISMATCH, ["FAIL", "relu/jax: only in OLD", "NEW no longer checks it"]


def _case_added(r):
    r["cases"]["relu_again"] = copy.deepcopy(r["cases"]["relu"])
    return EXIT_OK, ["relu_again: only in NEW"]


def _framework_added(r):
    r["cases"]["relu"]["frameworks"]["jax_again"] = copy.deepcopy(_jax(r))
    return EXIT_OK, ["relu/jax_again: only in NEW"]


PLANTS = {f.__name__.strip("_").replace("_", "-"): f for f in (
    _verdict, _transcript, _horizon, _reference_dynamics, _framework_dynamics, _dead_units, _version,
    _kink_convention, _kink_table_missing, _case_missing, _framework_missing, _case_added,
    _framework_added)}


@pytest.mark.parametrize("plant", PLANTS.values(), ids=PLANTS.keys())
def test_a_planted_change_is_named_with_both_values_and_its_exit_code(tmp_path, capsys, report, plant):
    new = copy.deepcopy(report)
    expected, parts = plant(new)
    code, out, err = _diff(tmp_path, capsys, report, new)
    assert code == expected, f"exit {code}, expected {expected}:\n{out}{err}"
    _line(out, *parts)
    fails = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert len(fails) == (expected == EXIT_MISMATCH), f"FAIL lines {fails}, exit {code}:\n{out}"


@pytest.mark.parametrize("lost", ["cases", "frameworks"])
def test_a_report_that_lost_everything_fails_once_for_each_loss(tmp_path, capsys, report, lost):
    # A nightly whose NEW report checks nothing (every case, or every framework, gone) fails.
    new = copy.deepcopy(report)
    if lost == "cases":
        new["cases"] = {}
        where = list(report["cases"])
    else:
        for case in new["cases"].values():
            case["frameworks"] = {}
        where = [f"{c}/{fw}" for c, case in report["cases"].items() for fw in case["frameworks"]]
    code, out, err = _diff(tmp_path, capsys, report, new)
    assert code == EXIT_MISMATCH, f"NEW without {lost}: exit {code}, expected {EXIT_MISMATCH}:\n{out}{err}"
    fails = sorted(line.split(": only in OLD")[0] for line in out.splitlines() if line.startswith("FAIL"))
    assert fails == sorted(f"FAIL  {w}" for w in where), (
        f"NEW without {lost}: FAIL lines for {fails}, expected one for each of {where}:\n{out}")


G, SHARE = tolerances.DIFF_GROWTH, tolerances.DIFF_SHARE

ERRORS = {   # where, group, OLD error and NEW error from (measured error, its tolerance), exit code
    "past-the-budget": ("relu", "jax", "grads", lambda e, t: e, lambda e, t: max(2 * G * e, 1.2 * SHARE * t),
                        EXIT_MISMATCH),
    "local-past-the-budget": ("relu", "jax", "local W1", lambda e, t: e,
                              lambda e, t: max(2 * G * e, 1.2 * SHARE * t), EXIT_MISMATCH),
    "grown-within-the-share": ("relu", "jax", "grads", lambda e, t: e, lambda e, t: 2 * G * e, EXIT_OK),
    "local-grown-within-the-share": ("relu", "jax", "local loss", lambda e, t: e, lambda e, t: 1.2 * G * e,
                                     EXIT_OK),
    "from-exactly-0": ("sgd_two_relu", "torch", "grads", lambda e, t: e, lambda e, t: 0.1 * SHARE * t,
                       EXIT_OK),
    "near-the-tolerance-by-less-than-the-factor": ("relu", "jax", "grads", lambda e, t: 0.8 * SHARE * t,
                                                   lambda e, t: 1.2 * SHARE * t, EXIT_OK),
}


def _error(r, case, fw, group):
    """(the dict holding the error group, its key, its tolerance)."""
    f = r["cases"][case]["frameworks"][fw]
    where = f["local"] if group.startswith("local ") else f
    return where["max_rel_err"], group.removeprefix("local "), where["tolerance"]


@pytest.mark.parametrize("case,fw,group,old_error,new_error,expected", ERRORS.values(), ids=ERRORS.keys())
def test_an_error_fails_only_past_its_growth_and_its_share_of_the_tolerance(
        tmp_path, capsys, report, case, fw, group, old_error, new_error, expected):
    new = copy.deepcopy(report)
    errors, key, tol = _error(report, case, fw, group)
    measured = errors[key]
    old = errors[key] = old_error(measured, tol)
    errors, key, _ = _error(new, case, fw, group)
    errors[key] = new_error(measured, tol)
    got = errors[key]
    if expected == EXIT_OK and got > G * old:
        assert got <= SHARE * tol, f"plant {old:.3g} -> {got:.3g} (tolerance {tol:.3g}) is past the share"
    code, out, err = _diff(tmp_path, capsys, report, new)
    assert code == expected, (f"{case}/{fw} {group} error {old:.3g} -> {got:.3g} (tolerance {tol:.3g}): "
                              f"exit {code}, expected {expected}:\n{out}{err}")
    shown = [line for line in out.splitlines() if f"{case}/{fw}: {group} error:" in line]
    if got > G * old:
        line = _line(out, f"{case}/{fw}: {group} error: {old:.3g} -> {got:.3g}")
        assert line.startswith("FAIL") == (expected == EXIT_MISMATCH), line
        assert ("past the budget" if expected == EXIT_MISMATCH else "within the budget") in line, line
    else:
        assert not shown, f"an error grown by less than x{G:g} is shown: {shown}"


def test_json_output_lists_each_change_with_both_values(tmp_path, capsys, report):
    new = copy.deepcopy(report)
    _jax(new).update(agree=False, failed="global")
    code, out, err = _diff(tmp_path, capsys, report, new, "--json")
    data = json.loads(out)
    assert code == EXIT_MISMATCH and data["fails"] is True, f"exit {code}, fails {data['fails']}"
    (change,) = data["changes"]
    want = {"kind": "verdict", "case": "relu", "framework": "jax", "old": "agree",
            "new": "MISMATCH (trajectories)", "fails": True}
    assert {k: change[k] for k in want} == want, f"change {change}, expected {want}"


def _garbage(text):
    def write(tmp_path):
        (tmp_path / "bad.json").write_text(text, encoding="utf-8")
        return str(tmp_path / "bad.json")
    return write


def _layout(edit):
    def write(tmp_path, report):
        bad = copy.deepcopy(report)
        edit(bad)
        (tmp_path / "bad.json").write_text(json.dumps(bad), encoding="utf-8")
        return str(tmp_path / "bad.json")
    return write


BAD = {   # what stands in for NEW -> what the one line says
    "missing-file": (lambda tmp_path, r: str(tmp_path / "absent.json"), "absent.json: no such file"),
    "directory": (lambda tmp_path, r: str(tmp_path), "is a directory, not a report"),
    "not-json": (lambda tmp_path, r: _garbage("crosscheck run output\n")(tmp_path), "bad.json: not JSON ("),
    "a-list": (lambda tmp_path, r: _garbage("[1, 2]")(tmp_path), "bad.json: not a crosscheck report"),
    "another-report": (lambda tmp_path, r: _garbage('{"version": 1, "tests": []}')(tmp_path),
                       "bad.json: not a crosscheck report"),
    "unknown-layout": (_layout(lambda r: _jax(r).pop("agree")),
                       "bad.json: unknown report layout: report.cases.relu.frameworks.jax.agree is missing"),
    "wrong-type": (_layout(lambda r: _jax(r)["max_rel_err"].update(grads=[1.0])),
                   "report.cases.relu.frameworks.jax.max_rel_err.grads is a list, not a number"),
    "other-dtype": (_layout(lambda r: r.update(dtype="float32")),
                    "is a float64 report and"),
}


@pytest.mark.parametrize("make,says", BAD.values(), ids=BAD.keys())
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, report, make, says):
    (tmp_path / "old.json").write_text(json.dumps(report), encoding="utf-8")
    bad = make(tmp_path, report)
    code = main(["diff", str(tmp_path / "old.json"), bad])
    out = capsys.readouterr()
    assert code == EXIT_USAGE, f"exit {code}, expected {EXIT_USAGE}: {out.err}"
    assert out.out == "", f"stdout {out.out!r}"
    lines = out.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("crosscheck: error: ") and says in lines[0], (
        f"stderr should be one line with {says!r}: {out.err!r}")
