"""The general training loop (crosscheck.declaring.loop): what a model declares beyond the documents'
loops reaches every implementation the same way, and a correct model agrees in each."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import cli

import crosscheck
from crosscheck import optim
from crosscheck.declaring.loop import make_feed
from crosscheck.declaring.model import ModelError
from crosscheck.frameworks import FRAMEWORKS

pytestmark = [pytest.mark.torch, pytest.mark.jax]

RNG = np.random.default_rng(3)
X = RNG.normal(size=(7, 2))
Y = RNG.normal(size=(7, 1))
INIT = {"w": RNG.normal(size=(2, 1)), "b": np.zeros(1)}


def forward(xp, p, x):
    return x @ p["w"] + p["b"]


def loss(xp, pred, y):
    return xp.mean((pred - y) ** 2)


def backward(p, x, y):
    d = 2 * (x @ p["w"] + p["b"] - y) / len(x)
    return {"w": x.T @ d, "b": d.sum(0)}


def line(**kw) -> crosscheck.Model:
    return crosscheck.Model(kw.pop("name", "line"), X, Y, INIT, forward, loss, backward,
                            **{"lr": 0.1, "epochs": 3, **kw})


def test_mini_batches_are_consecutive_slices_of_the_epochs_order_the_last_one_smaller():
    feed = make_feed(7, 2, 3, None, 0, X, None, 0)
    got = [feed.index(k).tolist() for k in range(feed.steps)]
    assert got == [[0, 1, 2], [3, 4, 5], [6]] * 2, f"batch=3 over 7 samples: {got}"


def test_shuffle_is_one_generator_made_once_each_epoch_a_permutation():
    feed = make_feed(7, 3, 7, 5, 0, X, None, 0)
    rng = np.random.default_rng(5)
    want = [rng.permutation(7).tolist() for _ in range(3)]
    assert [feed.index(k).tolist() for k in range(3)] == want, "shuffle=5: not default_rng(5).permutation"


def test_noise_is_drawn_once_per_step_from_one_generator_with_the_steps_batch():
    seen = []

    def noise(rng, x):
        seen.append(x.shape)
        return {"mask": rng.random(x.shape)}
    feed = make_feed(7, 1, 3, None, 0, X, noise, 11)
    rng = np.random.default_rng(11)
    for k, shape in enumerate([(3, 2), (3, 2), (1, 2)]):
        np.testing.assert_array_equal(feed.noise_at(k)["mask"], rng.random(shape),
                                      err_msg=f"noise at step {k}")
    assert seen == [(3, 2), (3, 2), (1, 2)], f"noise saw batches {seen}"


@pytest.mark.parametrize("kw", [{"batch": 3, "shuffle": 2}, {"batch": "sample", "shuffle": 0},
                                {"optimizer": optim.SGD(momentum=0.9)}, {"optimizer": optim.RMSprop()}],
                         ids=["batch3-shuffled", "sample-shuffled", "momentum", "rmsprop"])
def test_a_correct_model_agrees_in_both_frameworks(kw):
    result = crosscheck.check(line(**kw))
    assert result.agree, f"[line {kw}] {result.verdicts}"


@pytest.fixture(scope="module")
def shuffled_line():
    return crosscheck.check(line(batch=3, shuffle=2), frameworks=["torch"])


def test_every_implementation_keeps_the_same_feed(shuffled_line):
    ref, fw = shuffled_line.trajectories["numpy"], shuffled_line.trajectories["torch"]
    assert np.array_equal(ref.feed.order, fw.feed.order), \
        f"[line/torch] epoch 0's order {fw.feed.order[0]}, the reference's {ref.feed.order[0]}"


def test_a_mini_batch_run_has_a_step_per_batch(shuffled_line):
    steps = shuffled_line.trajectories["numpy"].steps
    assert steps == 9, f"[line] 3 epochs of 3 batches (7 samples, batches of 3): {steps} steps"


def test_the_json_hyper_carries_batch_and_shuffle(shuffled_line):
    hyper = shuffled_line.to_json()["cases"]["line"]["hyper"]
    assert (hyper["batch"], hyper["shuffle"]) == (3, 2), f"[line] hyper {hyper}"


def test_a_penalty_missing_from_the_backward_is_its_gradient_at_step_0():
    lam = 0.05
    model = line(penalty=lambda xp, p: lam * xp.sum(p["w"] ** 2), name="penalised")
    result = crosscheck.check(model, frameworks=["torch"])
    d = result.first_divergence
    assert d is not None and d.question == "local" and d.step == 0 and d.parameter == "w", \
        f"[penalised/torch] {result.verdicts}"


def test_integer_labels_stay_integers():
    labels = np.array([0, 1, 1, 0, 1, 0, 0])

    def fwd(xp, p, x):
        return x @ p["w"] + p["b"]

    def ce(xp, scores, y):
        z = scores - xp.max(scores, axis=1, keepdims=True)
        logp = z - xp.log(xp.sum(xp.exp(z), axis=1, keepdims=True))
        onehot = xp.astype(y[:, None] == xp.arange(2), logp.dtype)
        return -xp.mean(xp.sum(onehot * logp, axis=1))

    def back(p, x, y):
        assert y.dtype.kind == "i", f"the backward got y of dtype {y.dtype}"
        s = x @ p["w"] + p["b"]
        e = np.exp(s - s.max(1, keepdims=True))
        d = (e / e.sum(1, keepdims=True) - np.eye(2)[y]) / len(x)
        return {"w": x.T @ d, "b": d.sum(0)}
    model = crosscheck.Model("labels", X, labels, {"w": np.zeros((2, 2)), "b": np.zeros(2)}, fwd, ce, back,
                             lr=0.5, epochs=4)
    result = crosscheck.check(model)
    assert result.agree, f"[labels] {result.verdicts}"


@pytest.mark.parametrize("kw, words", [
    ({"batch": 0}, "batch must be"), ({"batch": 2.5}, "batch must be"),
    ({"shuffle": "yes"}, "shuffle must be"), ({"shuffle": False}, "shuffle must be"),
    ({"seed": True}, "seed must be"), ({"optimizer": "adam"}, "optimizer must be one of"),
    ({"sample_axis": 2}, "sample_axis must be 0 or 1"), ({"penalty": 3}, "penalty must be a function"),
    ({"state": {}}, "state must be a non-empty dict"),
    ({"update": lambda p, g, s: p}, "update must return (params, state)")])
def test_a_bad_declaration_is_one_line(kw, words):
    with pytest.raises(ModelError) as e:
        m = line(**kw)
        m.validate()
    assert words in str(e.value) and "\n" not in str(e.value), f"{kw}: {e.value}"


EXAMPLES = Path(__file__).parent.parent / "examples"
MODELS = Path(__file__).parent / "models"
LOOP_EXAMPLES = ("adam_minibatch", "char_rnn", "dropout_momentum", "batchnorm", "columns")
#: model -> (question, step, the parameters blamed first): each planted mistake where it shows.
PLANTED = {"adam_no_bias_correction": ("update", 0, "W1"), "momentum_before_grad": ("update", 0, "W1"),
           "l2_missing_factor": ("local", 0, "W1"), "dropout_mask_not_in_backward": ("local", 0, "W1"),
           "rnn_state_after_step": ("local", 1, "Whh")}


@pytest.fixture(scope="module")
def examples_run():
    import contextlib
    import io
    import json

    from crosscheck import cli

    def run(*argv):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli.main(["run", *argv, "--json", "-"])
        return code, json.loads(out.getvalue()), err.getvalue()

    _, examples, said = run(*(str(EXAMPLES / f"{n}.py") for n in LOOP_EXAMPLES))
    # Every planted mistake shows in its first epoch (at step 0 or 1): two epochs show it.
    code, planted, said_too = run(*(str(MODELS / f"{n}.py") for n in PLANTED), "--epochs", "2")
    return code, {"cases": {**examples["cases"], **planted["cases"]}}, said + said_too


@pytest.mark.parametrize("name", LOOP_EXAMPLES)
def test_each_real_loop_example_agrees_in_both_frameworks(examples_run, name):
    _, report, table = examples_run
    case = report["cases"][name]
    verdicts = {fw: v["agree"] for fw, v in case["frameworks"].items()}
    assert verdicts == dict.fromkeys(FRAMEWORKS, True) and not case["cannot_express"], \
        f"[{name}] {verdicts}, cannot express {case['cannot_express']}:\n{table}"


@pytest.mark.parametrize("name", PLANTED)
def test_each_planted_loop_mistake_is_caught_at_its_step_on_its_parameter(examples_run, name):
    code, report, table = examples_run
    question, step, parameter = PLANTED[name]
    for fw, v in report["cases"][name]["frameworks"].items():
        d = v["first_divergence"]
        got = (v["failed"], d and d["step"], d and d["parameter"])
        assert got == (question, step, parameter), f"[{name}/{fw}] caught as {got}, planted {PLANTED[name]}"
    assert code == 1, f"a run with planted mistakes exited {code}"


def test_an_optimizer_one_framework_cannot_express_is_said_and_never_agree(capsys):
    code, out, err = cli(capsys, "run", f"{__file__}:torch_style_adagrad")
    err = out + err
    assert code == 0 and "CANNOT EXPRESS" in err and "optax's adagrad adds eps inside" in err, \
        f"[torch_style_adagrad] exit {code}\n{err}"
    assert "1 case x 2 frameworks: 1 agree, 0 mismatch, 1 cannot express the optimizer" in err, err


def test_a_run_of_only_frameworks_that_cannot_express_the_optimizer_is_one_line(capsys):
    code, out, err = cli(capsys, "run", f"{__file__}:torch_style_adagrad", "--framework", "jax")
    assert code == 2 and "cannot run its optimizer" in err and "check it with torch" in err, \
        f"[torch_style_adagrad] jax alone: exit {code}\n{err}"


def _adagrad_outside(p, g, s):
    if not s:
        s["sum"] = {k: np.zeros_like(v) for k, v in p.items()}
    for k in p:
        s["sum"][k] += g[k] ** 2
        p[k] -= 0.1 * g[k] / (np.sqrt(s["sum"][k]) + 1e-10)
    return p, s


torch_style_adagrad = line(name="torch_style_adagrad", optimizer=optim.Adagrad(), update=_adagrad_outside)


def test_the_readmes_adam_example_is_the_file_it_names():
    readme = (EXAMPLES.parent / "README.md").read_text()
    code = (EXAMPLES / "adam_logistic.py").read_text()
    assert f"```python\n{code}```" in readme, \
        "README's hand-written Adam differs from examples/adam_logistic.py"


def test_a_mini_batch_runs_dead_units_are_named_by_sample_not_by_batch_row():
    from crosscheck.declaring.model import load
    from crosscheck.judging.diagnostics import dead_units

    model = load(str(MODELS / "relu_minibatch.py"))[0]
    result = crosscheck.check(model, frameworks=["torch"])
    ref = result.trajectories["numpy"]
    units = {u["name"]: u for u in dead_units(ref, model.case)}
    assert units["z[:, 1]"]["always"] and units["z[:, 1]"]["samples"] == list(range(10)), units
    # every sample named off from some step was really off at each later visit
    for u in units.values():
        col = int(u["name"].split(", ")[1].rstrip("]"))
        for i in u["samples"]:
            for k in range(u["from_step"][str(i)], ref.steps):
                index = ref.feed.index(k).tolist()
                if i in index:
                    assert not ref.masks["z"][k][index.index(i), col], \
                        f"[relu_minibatch] {u['name']} said off on sample {i} from step " \
                        f"{u['from_step'][str(i)]}, on at step {k}"


def _stateful_forward(xp, p, x, state):
    return x @ p["w"] + p["b"], {"seen": state["seen"] + 1}


def _stateful_backward(p, x, y, state):
    return backward(p, x, y)


@pytest.mark.parametrize("kw, words", [
    ({"forward": lambda xp, p, x, state: x @ p["w"]}, "forward must return (prediction, new_state)"),
    ({"forward": lambda xp, p, x, state: (x @ p["w"], {})}, "forward's new state has no 'seen'"),
    ({"noise": lambda rng, x: rng.random(3)}, "noise must return a dict"),
    ({"update": lambda p, g, s: 1 / 0}, "update failed at the initial values: ZeroDivisionError")])
def test_a_real_loop_that_cannot_run_is_one_line(kw, words):
    base = {"forward": _stateful_forward, "backward": _stateful_backward, "state": {"seen": np.zeros(1)}}
    if "noise" in kw:
        base = {}
    with pytest.raises(ModelError) as e:
        crosscheck.Model("broken_loop", X, Y, INIT, **{"loss": loss, "backward": backward, "forward": forward,
                                                       **base, **kw}, lr=0.1, epochs=2).validate()
    assert words in str(e.value) and "\n" not in str(e.value), f"{kw}: {e.value}"


@pytest.mark.parametrize("factor", [10, 100])
def test_a_correct_rnn_with_adagrad_agrees_at_a_large_learning_rate(tmp_path, capsys, factor):
    """Adagrad's step divides by sqrt(sum + eps): an element near 0 turns its gradient's
    rounding into a step lr / sqrt(eps) times larger. The envelope's shadow must see that
    rounding (it once called this correct RNN wrong at step 1 at 10 and 100 times its lr)."""
    source = (EXAMPLES / "char_rnn.py").read_text()
    edited = source.replace("LR = 0.1\n", f"LR = 0.1 * {factor}\n")
    assert edited != source, "the planted edit did not apply"
    (tmp_path / "rnn.py").write_text(edited)
    code, out, err = cli(capsys, "run", str(tmp_path / "rnn.py"))
    assert code == 0, f"[char_rnn at lr x{factor}] exit {code}:\n{out}{err}"


def test_the_page_shows_a_leg_that_cannot_express_the_optimizer(capsys, tmp_path):
    page = tmp_path / "index.html"
    code, out, err = cli(capsys, "run", f"{__file__}:torch_style_adagrad", "--html", str(page))
    html = page.read_text()
    assert code == 0 and 'class="na">CANNOT EXPRESS: optax&#39;s adagrad' in html, \
        f"[torch_style_adagrad] the page has no CANNOT EXPRESS row (exit {code})"


def test_a_wrong_update_says_which_of_the_optimizers_state_it_matches(examples_run):
    _, report, _ = examples_run
    torch_leg = report["cases"]["adam_no_bias_correction"]["frameworks"]["torch"]
    text = torch_leg["first_divergence"]["explanation"]["text"]
    assert "bias correction of both moments is missing" in text, text
    assert "your state matches torch.optim's after step 0 (exp_avg of W1 = state['m']['W1']" in text, text


def test_a_wrong_moment_is_named_as_the_optimizers_state_it_fails(tmp_path, capsys):
    source = (EXAMPLES / "adam_logistic.py").read_text()
    edited = source.replace("(1 - B2) * g[k] ** 2", "(1 - B2) * abs(g[k])")   # v averages |g|, not g**2
    assert edited != source, "the planted edit did not apply"
    (tmp_path / "adam_v.py").write_text(edited)
    code, out, err = cli(capsys, "run", str(tmp_path / "adam_v.py"), "--framework", "torch")
    assert code == 1 and "MISMATCH (manual update)" in out + err, out + err
    assert "torch.optim's exp_avg_sq of w, exp_avg_sq of b after step 0 matches no array of your state" \
        in " ".join((out + err).split()), out + err


def test_an_l2_gradient_missing_its_factor_2_is_named_as_the_penalty(examples_run):
    _, report, _ = examples_run
    e = report["cases"]["l2_missing_factor"]["frameworks"]["torch"]["first_divergence"]["explanation"]
    assert e["kind"] == "penalty" and e["factor"] == pytest.approx(0.5, rel=1e-6), e
    assert "missing factor 2" in e["text"], e


def test_a_correct_model_at_a_large_learning_rate_is_never_called_wrong(capsys):
    import json

    code, out, err = cli(capsys, "run", str(MODELS / "tanh_mlp_optimizers.py"), "--json", "-")
    report = json.loads(out)
    verdicts = {(case, fw): v["agree"] for case, c in report["cases"].items()
                for fw, v in c["frameworks"].items()}
    assert all(verdicts.values()) and len(verdicts) == 4, f"[tanh_mlp_optimizers] {verdicts}\n{err}"
    assert report["cases"]["momentum_lr1"]["dynamics"]["kind"] == "diverging", "momentum_lr1 should diverge"


def _counting_forward(xp, p, x, state):
    return x @ p["w"] + p["b"], {"n": state["n"] + 1}


def _counting_backward(p, x, y, state):
    return backward(p, x, y)


def test_a_state_of_zero_dimensions_is_carried_as_it_is():
    model = crosscheck.Model("counter", X, Y, INIT, _counting_forward, loss, _counting_backward, lr=0.1,
                             epochs=2, batch=3, state={"n": np.zeros(())})
    result = crosscheck.check(model, frameworks=["torch"])
    np.testing.assert_array_equal(result.trajectories["torch"].state["n"], np.arange(7.0),
                                  err_msg="[counter/torch] the carried count")


def test_a_model_with_a_state_of_zero_dimensions_agrees():
    model = crosscheck.Model("counter", X, Y, INIT, _counting_forward, loss, _counting_backward, lr=0.1,
                             epochs=2, batch=3, state={"n": np.zeros(())})
    result = crosscheck.check(model)
    assert result.agree, f"[counter] {result.verdicts}"


_steps_taken = [0]


def _adam_with_a_global_counter(p, g, state):
    _steps_taken[0] += 1   # kept outside state, as a script keeps it
    return {k: p[k] - 0.1 * g[k] / _steps_taken[0] for k in p}, state


def test_an_update_that_keeps_state_outside_its_argument_is_one_line():
    with pytest.raises(ModelError) as e:
        line(optimizer=optim.SGD(), update=_adam_with_a_global_counter, name="global_counter").validate()
    assert "keeps state outside its state argument" in str(e.value), str(e.value)


def test_lr_cannot_reach_a_hand_written_update(capsys):
    code, out, err = cli(capsys, "run", str(EXAMPLES / "char_rnn.py"), "--lr", "1")
    said = f"crosscheck: error: {EXAMPLES / 'char_rnn.py'}: [char_rnn] declares its own update="
    assert code == 2 and err.startswith(said), f"exit {code}: {err}"
    with pytest.raises(ValueError, match="cannot reach it"):
        from crosscheck.declaring.model import load

        crosscheck.check(load(str(EXAMPLES / "char_rnn.py"))[0], lr=1.0)


def test_the_errors_plot_carries_each_frameworks_update_errors():
    from crosscheck.declaring.model import load
    from crosscheck.reporting import report

    result = crosscheck.check(load(str(EXAMPLES / "adam_logistic.py"))[0], frameworks=["torch"])
    series = report.error_series(result.report)["frameworks"]["torch"]["update"]
    steps = result.trajectories["numpy"].steps
    assert len(series) == steps and 0 <= float(np.max(series)) < 1e-13, \
        f"[adam_logistic/torch] update errors over {len(series)} of {steps} steps, worst {np.max(series)}"


def test_models_that_share_a_forward_get_their_own_loops_runs(capsys):
    code, out, err = cli(capsys, "run", str(MODELS / "shared_forward_optimizers.py"))
    assert code == 0 and "3 cases x 2 frameworks: 6 agree" in out + err, f"exit {code}:\n{out}{err}"


def test_a_real_loops_report_claims_no_prediction_it_did_not_compare(examples_run):
    _, report, _ = examples_run
    groups = report["cases"]["adam_minibatch"]["frameworks"]["torch"]["max_rel_err"]
    assert "predictions" not in groups, f"[adam_minibatch/torch] predictions reported as compared: {groups}"


def test_explain_names_a_real_loops_batch_by_its_samples(capsys):
    code, out, err = cli(capsys, "explain", str(EXAMPLES / "adam_minibatch.py"), "--step", "4")
    head = out.splitlines()[0] if out else err
    assert code == 0 and "step 4 (epoch 1, batch 1 of 3 (samples " in head and "At(" not in out, head
