"""Users' own models (``crosscheck.Model``): the examples on the command line, the Python
API (``check``, ``assert_backprop_matches``), the pytest plugin, bad declarations, the
diagnostics, ``explain``, float32, plots, and files of several models.

The model files the tests need live in ``tests/models/``, each small enough to run in
well under a second; the examples are the ones in ``examples/``.
"""

import re
from pathlib import Path

import numpy as np
import pytest
from conftest import import_package
from helpers import FRAMEWORKS, cli

import crosscheck
from crosscheck.cli import EXIT_MISMATCH, EXIT_OK, EXIT_USAGE
from crosscheck.declaring.model import Model, load
from crosscheck.testing import assert_backprop_matches

pytest_plugins = ["pytester"]

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"
MODELS = Path(__file__).resolve().parent / "models"

TANH_SOFTMAX = str(EXAMPLES / "tanh_softmax.py")
SGD_RELU = str(EXAMPLES / "sgd_relu.py")
PLANTED = str(EXAMPLES / "planted_mistake.py")
TINY = str(MODELS / "tiny_tanh.py")
TWO = str(MODELS / "two_models.py")

CORRECT = [TANH_SOFTMAX, SGD_RELU, TINY]
CORRECT_IDS = ["tanh_softmax", "sgd_relu", "tiny_tanh"]


# ---------------------------------------------------------------------------- 1. the examples
EXAMPLE_EXITS = [("tanh_softmax", EXIT_OK), ("sgd_relu", EXIT_OK), ("planted_mistake", EXIT_MISMATCH)]


@pytest.mark.torch
@pytest.mark.jax
@pytest.mark.parametrize("name, expected", EXAMPLE_EXITS, ids=[e[0] for e in EXAMPLE_EXITS])
def test_example_runs_with_its_exit_code(capsys, name, expected):
    # With a helper process, which loads the example file too.
    code, out, err = cli(capsys, "run", str(EXAMPLES / f"{name}.py"), "--jobs", "2")
    assert code == expected, f"[{name}] crosscheck run: exit {code}, expected {expected}\n{out}{err}"


@pytest.mark.torch
@pytest.mark.jax
@pytest.mark.parametrize("name", [e[0] for e in EXAMPLE_EXITS])
def test_example_table_names_the_model_for_each_framework(capsys, name):
    code, out, err = cli(capsys, "run", str(EXAMPLES / f"{name}.py"), "--jobs", "1")
    rows = [line.split()[:2] for line in out.splitlines() if line.startswith(name)]
    assert rows == [[name, fw] for fw in FRAMEWORKS], f"[{name}] table rows {rows}\n{out}{err}"


@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_planted_example_first_divergence_is_grad_b_at_step_0(cli_json, fw):
    code, report, err = cli_json(PLANTED)
    first = report["cases"]["planted_mistake"]["frameworks"][fw]["first_divergence"]
    assert first is not None, f"[planted_mistake/{fw}] no divergence reported\n{err}"
    got = {k: first[k] for k in ("question", "step", "quantity", "parameter")}
    expected = {"question": "local", "step": 0, "quantity": "grad", "parameter": "b"}
    assert got == expected, f"[planted_mistake/{fw}] first divergence {first}, expected {expected}"


@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_planted_example_fails_the_local_question(cli_json, fw):
    code, report, err = cli_json(PLANTED)
    entry = report["cases"]["planted_mistake"]["frameworks"][fw]
    assert (code, entry["failed"], entry["agree"]) == (EXIT_MISMATCH, "local", False), (
        f"[planted_mistake/{fw}] exit {code}, failed {entry['failed']!r}, agree {entry['agree']}")


@pytest.mark.parametrize("fw", FRAMEWORKS)
@pytest.mark.parametrize("path", CORRECT[:2], ids=CORRECT_IDS[:2])
def test_correct_example_reports_no_divergence(cli_json, path, fw):
    name = Path(path).stem
    code, report, err = cli_json(path)
    entry = report["cases"][name]["frameworks"][fw]
    assert (entry["first_divergence"], entry["failed"], entry["agree"]) == (None, None, True), (
        f"[{name}/{fw}] first divergence {entry['first_divergence']}, failed {entry['failed']!r}")


@pytest.mark.parametrize("path", [TANH_SOFTMAX, SGD_RELU, PLANTED], ids=[e[0] for e in EXAMPLE_EXITS])
def test_user_model_has_no_document(cli_json, path):
    name = Path(path).stem
    code, report, err = cli_json(path)
    case = report["cases"][name]
    assert (case["document"], case["transcript"]) == (None, None), (
        f"[{name}] document {case['document']!r}, transcript {case['transcript']!r}: expected neither")


# ---------------------------------------------------------------------------- 2. check()
def model_of(spec: str) -> Model:
    (model,) = load(spec)
    return model


@pytest.mark.parametrize("path", CORRECT, ids=CORRECT_IDS)
def test_check_agrees_on_a_correct_model(checked, path):
    result = checked(path)
    assert (result.agree, result.first_divergence) == (True, None), (
        f"[{result.model}] check(): agree {result.agree}, first divergence {result.first_divergence}\n"
        f"{result}")


def test_check_str_is_the_table_with_the_model(checked):
    text = str(checked(TANH_SOFTMAX))
    header = text.splitlines()[0].split()
    assert header == ["case", "framework", "local", "loss", "grads", "params", "envelope", "verdict"], (
        f"[tanh_softmax] str(check()) starts with {text.splitlines()[0]!r}, not the table header")
    assert "tanh_softmax" in text, f"[tanh_softmax] str(check()) does not name the model:\n{text}"


@pytest.mark.parametrize("path", CORRECT, ids=CORRECT_IDS)
def test_check_html_names_the_model_and_agree(checked, path):
    result = checked(path)
    page = result._repr_html_()
    assert result.model in page and "agree" in page and "MISMATCH" not in page, (
        f"[{result.model}] _repr_html_ does not say the model agrees: {page}")


def test_check_html_says_mismatch_for_the_planted_model(checked):
    page = checked(PLANTED)._repr_html_()
    assert "planted_mistake" in page and "MISMATCH" in page, f"[planted_mistake] _repr_html_: {page}"


def test_check_finds_the_planted_bias_gradient(checked):
    result = checked(PLANTED)
    first = result.first_divergence
    assert not result.agree, "[planted_mistake] check() agrees with a wrong bias gradient"
    assert first is not None and (first.parameter, first.step, first.quantity) == ("b", 0, "grad"), (
        f"[planted_mistake] first divergence {first}, expected grad[b] at step 0")


# ---------------------------------------------------------------------------- 3. assert_backprop_matches
@pytest.mark.torch
@pytest.mark.jax
def test_assert_backprop_matches_passes_for_a_correct_model():
    assert_backprop_matches(model_of(TINY))


def planted_values() -> tuple[float, float]:
    """The planted model's bias gradient at its initial values: its manual value, and the
    true one (the mistake multiplies the mean's gradient by m), computed here by hand."""
    model = model_of(PLANTED)
    x, y = model.data
    manual = float(model.backward(model.params0, x, y)["b"][0])
    prob = 1 / (1 + np.exp(-(x @ model.params0["w"] + model.params0["b"])))
    return manual, float(np.mean(prob - y))


@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_assert_backprop_matches_message_names_model_framework_step_parameter_and_values(fw):
    with pytest.raises(AssertionError) as caught:
        assert_backprop_matches(model_of(PLANTED), frameworks=[fw])
    message = str(caught.value)
    for part in ("planted_mistake", fw, "step 0", "grad[b]"):
        assert part in message, f"[planted_mistake/{fw}] {part!r} missing from the message:\n{message}"
    numbers = [float(s) for s in re.findall(r"-?\d+\.\d+(?:e[-+]?\d+)?", message)]
    for what, value in zip(("manual", "autograd"), planted_values(), strict=True):
        assert any(np.isclose(n, value, rtol=1e-12, atol=0) for n in numbers), (
            f"[planted_mistake/{fw}] step 0 grad[b]: the {what} value {value!r} is not in the message:\n"
            f"{message}")


# ---------------------------------------------------------------------------- 4. the pytest plugin
USER_BASELINE_TEST = """\
from mymodel import model
def test_my_model_baseline(backprop_baseline):
    backprop_baseline(model)
"""

USER_MATCH_TEST = """\
from crosscheck.testing import assert_backprop_matches
from mymodel import model
def test_my_backprop():
    assert_backprop_matches(model)
"""


@pytest.fixture(scope="module", autouse=True)
def package_imported():
    """The whole package imported before pytester's fixture snapshots the modules (see
    conftest.import_package): a module-scoped fixture is set up before a test's own."""
    import_package()


def user_project(pytester, model_file: str, test: str) -> None:
    """A user's folder: their model as ``mymodel.py`` (renamed, so that it does not replace
    this session's models of the same name) and one test file; warnings are errors there too."""
    source = Path(model_file).read_text(encoding="utf-8")
    name = re.search(r'name="([^"]+)"', source)[1]
    pytester.makeini("[pytest]\nfilterwarnings =\n    error\n")
    pytester.makepyfile(mymodel=source.replace(f'name="{name}"', f'name="user_{name}"'),
                        test_user=test)


def set_lr(pytester, old: str, new: str) -> None:
    path = pytester.path / "mymodel.py"
    source = path.read_text(encoding="utf-8")
    assert source.count(old) == 1, f"mymodel.py: {old!r} must occur once"
    assert len(old) != len(new), "a same-size edit could leave a stale .pyc within one second"
    path.write_text(source.replace(old, new), encoding="utf-8")


# The plugin keeps every array of the trajectory, whatever the parameters' shapes: single
# numbers (line_fit: w (1, 1), b (1,)) and matrices (tiny_tanh: W1 (2, 3), b1 (3,), ...).
BASELINE_MODELS = [str(MODELS / "line_fit.py"), TINY]
BASELINE_IDS = ["scalar-params", "matrix-params"]


@pytest.mark.parametrize("model_file", BASELINE_MODELS, ids=BASELINE_IDS)
def test_plugin_first_run_writes_the_baseline_and_fails(pytester, model_file):
    user_project(pytester, model_file, USER_BASELINE_TEST)
    result = pytester.runpytest_inprocess()
    out = result.stdout.str()
    assert result.parseoutcomes() == {"failed": 1} and "File not found in data directory" in out, (
        f"[{Path(model_file).stem}] the first run should fail for want of a baseline:\n{out}")
    written = sorted(p.name for p in pytester.path.rglob("*.npz"))
    assert written == ["test_my_model_baseline.npz"], (
        f"[{Path(model_file).stem}] baselines written: {written}\n{result.stdout.str()}")


@pytest.mark.parametrize("model_file", BASELINE_MODELS, ids=BASELINE_IDS)
def test_plugin_second_run_passes(pytester, model_file):
    user_project(pytester, model_file, USER_BASELINE_TEST)
    pytester.runpytest_inprocess()
    result = pytester.runpytest_inprocess()
    assert result.parseoutcomes() == {"passed": 1}, (
        f"[{Path(model_file).stem}] second run against its own baseline:\n{result.stdout.str()}")


@pytest.mark.parametrize("model_file", BASELINE_MODELS, ids=BASELINE_IDS)
def test_plugin_fails_after_the_models_lr_changes(pytester, model_file):
    user_project(pytester, model_file, USER_BASELINE_TEST)
    pytester.runpytest_inprocess()
    before = pytester.runpytest_inprocess().parseoutcomes()
    assert before == {"passed": 1}, f"[{Path(model_file).stem}] the unchanged model fails its baseline"
    set_lr(pytester, "lr=0.1,", "lr=0.125,")
    result = pytester.runpytest_inprocess()
    out = result.stdout.str()
    assert result.parseoutcomes() == {"failed": 1}, f"[{Path(model_file).stem}] lr 0.1 -> 0.125:\n{out}"
    summary = [line for line in out.splitlines() if line.startswith("FAILED")]
    assert summary and "AssertionError" in summary[0], (
        f"[{Path(model_file).stem}] the changed run should fail its comparison, not error:\n{out}")


USER_MATCH = [(TINY, {"passed": 1}, ()),
              (PLANTED, {"failed": 1}, ("[user_planted_mistake/torch]", "[user_planted_mistake/jax]",
                                       "grad[b]", "step 0"))]


@pytest.mark.parametrize("model_file, outcomes, shown", USER_MATCH, ids=["correct", "planted"])
def test_plugin_user_test_with_assert_backprop_matches(frameworks_ran, pytester, model_file, outcomes, shown):
    user_project(pytester, model_file, USER_MATCH_TEST)
    result = pytester.runpytest_inprocess()
    result.assert_outcomes(**outcomes)
    out = result.stdout.str()
    missing = [s for s in shown if s not in out]
    assert not missing, f"[{Path(model_file).stem}] the user's failure report lacks {missing}:\n{out}"


# ---------------------------------------------------------------------------- 5. bad models
# (file or file:name, what the one line must say besides the model or file)
BAD = [
    ("bad_grad_shape.py", ["[bad_grad_shape]", "'b'", "(3,)", "(1, 3)", "never broadcast"]),
    ("missing_grad.py", ["[missing_grad]", "no gradient for 'b'"]),
    ("extra_grad.py", ["[extra_grad]", "'c'", "not a parameter"]),
    ("nonscalar_loss.py", ["[nonscalar_loss]", "(4,)", "not a scalar"]),
    ("inplace_backward.py", ["[inplace_backward]", "params['W']", "in place"]),
    ("raises_on_import.py", ["raises_on_import.py", "importing it failed", "LinAlgError"]),
    ("no_model.py", ["no_model.py", "no crosscheck.Model"]),
    ("does_not_exist.py", ["does_not_exist.py", "no such file"]),
    ("tiny_tanh.py:nosuch", ["tiny_tanh.py", "'nosuch'"]),
    ("log_of_zero.py", ["[log_of_zero]", "the loss is inf", "initial values", "step 0"]),
    ("broadcast_prediction.py", ["[broadcast_prediction]", "(8,)", "(8, 1)", "broadcasts to (8, 8)"]),
    ("backward_raises.py", ["backward_raises.py:11: [backward_raises] backward failed",
                            "cannot reshape array of size 4 into shape (3,)"]),
]
BAD_IDS = [b[0].removesuffix(".py").replace(".py:", ":") for b in BAD]


@pytest.mark.parametrize("command", ["run", "explain"])
@pytest.mark.parametrize("spec, says", BAD, ids=BAD_IDS)
def test_bad_model_is_one_line_exit_2(capsys, spec, says, command):
    code, out, err = cli(capsys, command, str(MODELS / spec))
    assert code == EXIT_USAGE, f"[{spec}] crosscheck {command}: exit {code}, expected {EXIT_USAGE}\n{err}"
    assert "Traceback" not in err, f"[{spec}] crosscheck {command} printed a traceback:\n{err}"
    assert len(err.splitlines()) == 1, f"[{spec}] crosscheck {command}: stderr is not one line:\n{err}"
    assert out == "", f"[{spec}] crosscheck {command} wrote to stdout: {out!r}"
    missing = [s for s in says if s not in err]
    assert not missing, f"[{spec}] crosscheck {command}: {missing} missing from {err!r}"


@pytest.mark.parametrize("spec, says", BAD, ids=BAD_IDS)
def test_bad_model_raises_model_error_from_python(spec, says):
    with pytest.raises(crosscheck.ModelError) as caught:
        for model in load(str(MODELS / spec)):
            crosscheck.check(model)
    message = str(caught.value)
    missing = [s for s in says if s not in message]
    assert not missing, f"[{spec}] ModelError {message!r} lacks {missing}"
    assert "\n" not in message, f"[{spec}] ModelError is not one line: {message!r}"


@pytest.mark.parametrize("absolute", [False, True], ids=["relative-path", "absolute-path"])
def test_import_failure_names_the_line(capsys, monkeypatch, absolute):
    # `crosscheck run mymodel.py` is how a user names a file: relative to where they are.
    monkeypatch.chdir(REPO)
    path = MODELS / "raises_on_import.py"
    spec = str(path) if absolute else str(path.relative_to(REPO))
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "np.linalg.inv" in text)
    code, out, err = cli(capsys, "run", spec)
    assert f"(line {line})" in err, f"[{spec}] the import failure does not name line {line}: {err!r}"


def forward(xp, p, x):
    return x @ p["w"]


def mse(xp, pred, y):
    return xp.mean((pred - y) ** 2)


def backward(p, x, y):
    return {"w": x.T @ (2 * (x @ p["w"] - y) / y.size)}


def declaration(**changes) -> dict:
    """A valid model declaration, with ``changes``."""
    return {"name": "static", "x": np.ones((3, 1)), "y": np.ones((3, 1)), "init": {"w": np.zeros((1, 1))},
            "forward": forward, "loss": mse, "backward": backward, "lr": 0.1, "epochs": 5, **changes}


STATIC = [
    ("lr-zero", {"lr": 0.0}, "lr"),
    ("lr-negative", {"lr": -0.1}, "lr"),
    ("lr-nan", {"lr": float("nan")}, "lr"),
    ("epochs-zero", {"epochs": 0}, "epochs"),
    ("epochs-float", {"epochs": 2.5}, "epochs"),
    ("batch-mini", {"batch": "mini"}, "batch"),
    ("x-y-lengths", {"y": np.ones((4, 1))}, "same number of samples"),
    ("init-empty", {"init": {}}, "init"),
    ("relu-a-string", {"relu": "a"}, "relu"),
]


def test_the_valid_declaration_constructs():
    # The bad declarations below differ from this one by one field each.
    assert Model(**declaration()).name == "static"


@pytest.mark.parametrize("changes, field", [s[1:] for s in STATIC], ids=[s[0] for s in STATIC])
def test_bad_static_declaration_raises_at_construction(changes, field):
    with pytest.raises(crosscheck.ModelError) as caught:
        Model(**declaration(**changes))
    message = str(caught.value)
    assert message.startswith("[static]") and field in message, (
        f"[static] {changes}: ModelError {message!r} should name the model and {field!r}")


# ---------------------------------------------------------------------------- 6. dead units
def test_sample_model_reports_its_never_learning_unit(cli_json):
    code, report, err = cli_json(SGD_RELU)
    dead = report["cases"]["sgd_relu"]["dead_units"]
    never = [(u["name"], u["unit"], u["samples"]) for u in dead if u["always"]]
    assert never == [("a[:, 2]", 2, list(range(8)))], (
        f"[sgd_relu] units off on every sample at every step: {never}, expected unit 2 of tap a\n{dead}")


def test_sample_model_takes_one_step_per_sample(cli_json):
    code, report, err = cli_json(SGD_RELU)
    case = report["cases"]["sgd_relu"]
    model = model_of(SGD_RELU)
    expected = model.epochs * len(model.data[0])
    assert (case["hyper"]["batch"], case["steps"]) == ("sample", expected), (
        f"[sgd_relu] batch {case['hyper']['batch']!r}, {case['steps']} steps; expected sample, {expected}")


# ---------------------------------------------------------------------------- 7. explain
TANH_SOFTMAX_LINES = ["dL/dlogits", "dL/dh", "dL/dz1", "dL/dW1", "dL/db1", "dL/dW2", "dL/db2"]


@pytest.mark.torch
@pytest.mark.jax
def test_explain_user_model_agrees_on_every_line(capsys):
    code, out, err = cli(capsys, "explain", TANH_SOFTMAX, "--step", "3")
    assert code == EXIT_OK, f"[tanh_softmax] explain --step 3: exit {code}\n{out}{err}"
    assert "7 of 7 checked lines agree" in out, f"[tanh_softmax] explain --step 3:\n{out}"


@pytest.mark.torch
@pytest.mark.jax
def test_explain_user_model_shows_each_intermediate_and_parameter(capsys):
    code, out, err = cli(capsys, "explain", TANH_SOFTMAX, "--step", "3")
    shown = [line.split()[0] for line in out.splitlines() if line.strip().endswith("(hand-written)")]
    assert shown == TANH_SOFTMAX_LINES, f"[tanh_softmax] explain --step 3 shows {shown}\n{out}"
    assert "step 3" in out.splitlines()[0], f"[tanh_softmax] explain --step 3 heads {out.splitlines()[0]!r}"


@pytest.mark.torch
@pytest.mark.jax
def test_explain_planted_model_names_the_wrong_line(capsys):
    code, out, err = cli(capsys, "explain", PLANTED, "--step", "0")
    assert code == EXIT_MISMATCH, f"[planted_mistake] explain --step 0: exit {code}\n{out}{err}"
    assert "first dL/db" in out, f"[planted_mistake] explain --step 0 does not name dL/db:\n{out}"


def test_explain_rejects_a_step_past_the_run(capsys):
    model = model_of(TINY)
    code, out, err = cli(capsys, "explain", TINY, "--step", str(model.epochs))
    assert code == EXIT_USAGE and len(err.splitlines()) == 1, (
        f"[tiny_tanh] explain --step {model.epochs} (one past the end): exit {code}, stderr {err!r}")


def test_explain_file_of_two_models_asks_for_one(capsys):
    code, out, err = cli(capsys, "explain", TWO)
    assert code == EXIT_USAGE and "two_models.py:" in err, f"[two_models] explain: exit {code}, {err!r}"


# ---------------------------------------------------------------------------- 8. float32, plots
@pytest.mark.torch
@pytest.mark.jax
def test_float32_run_of_a_correct_user_model_agrees(capsys):
    code, out, err = cli(capsys, "run", TINY, "--dtype", "float32", "--jobs", "1")
    assert code == EXIT_OK, f"[tiny_tanh] run --dtype float32: exit {code}\n{out}{err}"


@pytest.mark.torch
@pytest.mark.jax
@pytest.mark.parametrize("jobs", ["1", "2"])
def test_plots_of_a_user_model_are_written(capsys, tmp_path, jobs):
    code, out, err = cli(capsys, "run", TINY, "--plots", str(tmp_path), "--jobs", jobs)
    assert code == EXIT_OK, f"[tiny_tanh] run --plots --jobs {jobs}: exit {code}\n{out}{err}"
    for name in ("tiny_tanh_errors.png", "tiny_tanh_loss.png", "tiny_tanh_params.png"):
        data = (tmp_path / name).read_bytes() if (tmp_path / name).is_file() else b""
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000, (
            f"[tiny_tanh] {name}: not a PNG ({len(data)} bytes); folder holds "
            f"{sorted(p.name for p in tmp_path.iterdir())}")


# ---------------------------------------------------------------------------- 9. files of several models
def test_file_of_two_models_checks_both(cli_json):
    code, report, err = cli_json(TWO, "--jobs", "2")
    assert (code, list(report["cases"])) == (EXIT_OK, ["two_first", "two_second"]), (
        f"[two_models] exit {code}, cases {list(report['cases'])}\n{err}")


@pytest.mark.parametrize("name", ["second", "two_second"], ids=["variable-name", "model-name"])
def test_file_colon_name_checks_only_that_model(cli_json, name):
    code, report, err = cli_json(f"{TWO}:{name}", "--jobs", "2")
    assert (code, list(report["cases"])) == (EXIT_OK, ["two_second"]), (
        f"[two_models:{name}] exit {code}, cases {list(report['cases'])}\n{err}")


def test_file_colon_name_keeps_that_models_batch(cli_json):
    code, report, err = cli_json(f"{TWO}:second", "--jobs", "2")
    case = report["cases"]["two_second"]
    assert (case["hyper"]["batch"], case["steps"]) == ("sample", 10 * 4), (
        f"[two_models:second] batch {case['hyper']['batch']!r}, {case['steps']} steps")


# ------------------------------------------------------------- 11. saturated units, both probes
SATURATING = str(MODELS / "saturating_sigmoid.py")


@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_a_saturating_models_own_rounding_is_not_a_mismatch(fw, cli_json):
    code, report, err = cli_json(f"{SATURATING}:fast")
    got = report["cases"]["sigmoid_fast"]["frameworks"][fw]
    assert got["local"]["agree"], f"[sigmoid_fast/{fw}] {got['local']['first_divergence']}"
    assert got["local"]["extended_steps"] > 0, (
        f"[sigmoid_fast/{fw}] no step needed the extended-precision probe: the model no longer "
        "tests it")


@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_where_the_autograds_part_the_run_is_judged_up_to_there(fw, cli_json):
    code, report, err = cli_json(f"{SATURATING}:diverging")
    got = report["cases"]["sigmoid_diverging"]["frameworks"][fw]
    assert got["agree"], f"[sigmoid_diverging/{fw}] {got['first_divergence']}"
    split = got["autograd_split"]
    assert split is not None and got["local"]["steps"] == split, (
        f"[sigmoid_diverging/{fw}] autograd_split {split}, local steps {got['local']['steps']}")


@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_a_1e_9_error_is_still_caught_in_the_saturating_model(fw, cli_json):
    code, report, err = cli_json(f"{SATURATING}:wrong")
    first = report["cases"]["sigmoid_wrong"]["frameworks"][fw]["first_divergence"]
    assert code == EXIT_MISMATCH and first is not None, f"[sigmoid_wrong/{fw}] exit {code}"
    assert (first["question"], first["step"], first["parameter"]) == ("local", 0, "W2"), (
        f"[sigmoid_wrong/{fw}] {first}")


@pytest.mark.parametrize("fw", FRAMEWORKS)
def test_a_chaotic_correct_model_agrees_up_to_its_horizon(fw, cli_json):
    code, report, err = cli_json(str(MODELS / "chaotic_map.py"))
    got = report["cases"]["chaotic_map"]["frameworks"][fw]
    assert got["agree"], f"[chaotic_map/{fw}] {got['first_divergence']}"
    assert got["horizon"] is not None, f"[chaotic_map/{fw}] lr 0.16 should be chaotic"


@pytest.mark.torch
@pytest.mark.jax
def test_a_per_sample_model_of_one_sample_runs_and_explains(capsys):
    one = str(MODELS / "one_sample.py")
    code, out, err = cli(capsys, "run", one, "--jobs", "1")
    assert code == EXIT_OK, f"[one_sample] run exit {code}: {err}"
    code, out, err = cli(capsys, "explain", one, "--step", "3")
    assert code == EXIT_OK and "epoch 3, sample 0" in out, f"[one_sample] explain exit {code}: {err}{out}"


@pytest.mark.torch
@pytest.mark.jax
def test_the_json_names_the_likely_mistake_and_stays_strict_json(capsys):
    import json

    code, out, err = cli(capsys, "run", PLANTED, "--framework", "torch", "--json", "-", "--jobs", "1")

    def refuse(constant):
        raise AssertionError(f"[planted_mistake/torch] the JSON holds {constant}, which is not JSON")

    report = json.loads(out, parse_constant=refuse)
    first = report["cases"]["planted_mistake"]["frameworks"]["torch"]["first_divergence"]
    why = first["explanation"]
    assert (why["kind"], round(why["factor"], 9)) == ("constant_factor", 16.0), (
        f"[planted_mistake/torch] {why}")
    assert "batch size" in why["text"], f"[planted_mistake/torch] {why['text']}"
    assert first["elements"] and first["elements"][0]["index"] == [0], f"[planted_mistake/torch] {first}"
    assert "likely: grad[b] is exactly 16x" in err, "the table's likely: line is missing"


@pytest.mark.torch
@pytest.mark.jax
def test_explain_names_a_kink_as_run_does(capsys):
    code, out, err = cli(capsys, "explain", str(EXAMPLES / "kink_spelling.py"), "--step", "0")
    said = "likely: the gradients of W1, b1 differ only at a kink of the loss, where a is exactly 0"
    assert code == EXIT_MISMATCH and said in out, out[-1500:]
