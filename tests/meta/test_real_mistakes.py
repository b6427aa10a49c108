"""The likely mistake, named on networks written as users write them.

``_real_models`` holds architectures that are not the catalogue's ReLU model (a tanh RNN
over a short sequence, a sigmoid MLP, a softmax classifier with an L2 penalty and a
three-layer ReLU net, a 3x3 convolution written with ``xp`` indexing, a ReLU net started on
its kinks, a linear model with L1 on a padding feature), each with a correct
hand-written backward and copies of it with one line changed as a user gets it wrong. Each
mistake is judged against torch's real autograd (the probes of a wrong step evaluate
autograd again with a derivative left out, which an exact stand-in cannot do), and the kind
the tool names is the one its fingerprint has. ``unknown`` is expected where no fingerprint
exists (the closing note of the issue says which, and why).
"""

import functools

import numpy as np
import pytest

import crosscheck
from crosscheck import tolerances
from meta import _real_models as real

pytestmark = pytest.mark.torch


@functools.cache
def checked(key: str):
    entry = next(e for e in real.MISTAKES if e[0] == key)
    return crosscheck.check(real.build(entry), frameworks=("torch",))


def _said(key: str) -> str:
    first = checked(key).first_divergence
    return "nothing" if first is None else (
        f"{first.question} step {first.step} grad[{first.parameter}]: manual {first.expected!r} vs torch "
        f"{first.got!r}; likely: {first.likely}")


@pytest.mark.parametrize("key,family,step", [(e[0], e[3], e[4]) for e in real.MISTAKES],
                         ids=[e[0] for e in real.MISTAKES])
def test_the_mistake_is_named(key, family, step):
    first = checked(key).first_divergence
    got = None if first is None else (first.question, first.step, first.explanation["kind"])
    assert got == ("local", step, family), (
        f"[real_{key}/torch] {real.LINES.get(key, ('', ''))[1]!r}: expected {family} at step {step}; "
        f"{_said(key)}")


#: The softmax classifier's batch: the factor a dropped '/ samples' leaves.
SAMPLES = len(real.SOFT_X)


def test_the_clean_factor_is_chosen_over_a_mixed_reading():
    # '/ samples' dropped: b1 and b2 are exactly SAMPLES x autograd's; W1's and W2's are that
    # plus a correct L2 term, which no single pattern fits. The clean reading is the one named.
    first = checked("softmax-no-divide-by-samples").first_divergence
    chosen = (first.explanation["parameter"], first.explanation["kind"], first.explanation["factor"])
    assert chosen == ("b1", "constant_factor", pytest.approx(SAMPLES)), (
        f"[real_softmax-no-divide-by-samples/torch] step {first.step}: chosen {chosen}, expected b1's "
        f"{SAMPLES}x (the batch size); each gradient read "
        f"{[(e['parameter'], e['kind']) for e in first.explanations]}")


def test_every_wrong_gradient_is_read():
    first = checked("softmax-no-divide-by-samples").first_divergence
    read = [e["parameter"] for e in first.explanations]
    assert read == ["W1", "b1", "W2", "b2"], (
        f"[real_softmax-no-divide-by-samples/torch] step {first.step}: read {read}, expected every "
        "wrong gradient, W1, b1, W2, b2")


def test_the_json_lists_each_wrong_gradients_reading():
    result = checked("softmax-no-divide-by-samples")
    first = result.to_json()["cases"][result.model]["frameworks"]["torch"]["first_divergence"]
    params = [e["parameter"] for e in first["explanations"]]
    assert params == ["W1", "b1", "W2", "b2"] and first["explanation"]["parameter"] == "b1", (
        f"[{result.model}/torch] JSON first_divergence.explanations {params}, explanation "
        f"{first['explanation']}")


def test_the_likely_line_says_which_gradient_it_read():
    line = checked("softmax-no-divide-by-samples").first_divergence.likely
    said = (f"{SAMPLES} is the batch size", "read on grad[b1]", "W1 unknown")
    assert all(s in line for s in said), (
        f"[real_softmax-no-divide-by-samples/torch] likely: {line}; expected it to say {said}")


@pytest.mark.jax
@pytest.mark.parametrize("builder", real.CORRECT)
def test_the_correct_model_agrees(builder):
    result = crosscheck.check(real.BUILDERS[builder]())
    assert result.agree, f"[real_{builder}] correct backward called wrong: {result!r}\n{result}"


def test_a_kink_nobody_declared_is_found_at_step_0():
    # The forward spells its ReLU xp.maximum (1/2 at exactly 0), the backward (z > 0), and the
    # integer data put pre-activations exactly at 0: named a kink, without relu= declared.
    model = real.maximum_kink()
    assert not model.relu and np.any(real.KINK_X @ real.KINK_INIT["W1"] + real.KINK_INIT["b1"] == 0), (
        "the kink model must declare no ReLU and start on a kink")
    first = checked("maximum-kink").first_divergence
    z = real.KINK_X @ real.KINK_INIT["W1"] + real.KINK_INIT["b1"]
    at_zero = set(np.flatnonzero((z == 0).any(axis=0)))
    named = {e[-1] for e in first.explanation["elements"]} if first is not None else set()   # W1[i, j], b1[j]
    assert named and named <= at_zero, (
        f"[real_maximum_kink/torch] step 0: the kink's elements are of units {sorted(named)}, expected some "
        f"of the units exactly at 0, {sorted(at_zero)}: {_said('maximum-kink')}")


# --- explain, from Python: a notebook's model walked line by line ------------------------------
@functools.cache
def walked(key: str, step: int = 0):
    entry = next(e for e in real.MISTAKES if e[0] == key)
    return crosscheck.explain(real.build(entry), step=step)


@pytest.mark.jax
def test_explain_from_python_names_the_steps_likely_mistake():
    walk = walked("sigmoid-output-missing-prime")
    text = str(walk)
    head = "real_sigmoid-output-missing-prime: the manual backward of the model (in Python), step 0"
    likely = "likely: the manual gradients are autograd's with sigmoid's derivative at z3 left out"
    assert text.startswith(head) and likely in text and not walk.agree, (
        f"[real_sigmoid-output-missing-prime] crosscheck.explain(model, step=0): {walk!r}\n{text[:1500]}")


@pytest.mark.jax
def test_explain_in_a_notebook_marks_the_first_wrong_line():
    page = walked("sigmoid-output-missing-prime")._repr_html_()
    marked = "the first wrong line listed" in page and "background: #fde8ea" in page
    assert marked and "<b>Likely</b>" in page, (
        f"[real_sigmoid-output-missing-prime] explain's HTML:\n{page[:1500]}")


@pytest.mark.jax
def test_explain_never_calls_a_correct_kink_wrong():
    walk = crosscheck.explain(real.where_kink_correct(), step=0)
    assert walk.agree, f"[real_where_kink_correct] step 0 on a kink, forward and backward alike:\n{walk}"


#: Steps of the kink model's run (full batch: one step an epoch).
KINK_STEPS = real.where_kink_correct().epochs


@pytest.mark.parametrize("step", [-1, KINK_STEPS, 1.5, True])
def test_explain_refuses_a_step_outside_the_run_in_one_line(step):
    with pytest.raises(ValueError) as caught:
        crosscheck.explain(real.where_kink_correct(), step=step)
    assert "\n" not in str(caught.value) and "step" in str(caught.value), (
        f"[real_where_kink_correct] explain(step={step!r}): {caught.value!r}; expected one line naming "
        f"the step (the run has steps 0..{KINK_STEPS - 1})")


def test_the_notebook_view_of_a_check_offers_explain():
    page = checked("sigmoid-output-missing-prime")._repr_html_()
    assert "crosscheck.explain(model, step=0)" in page, (
        f"[real_sigmoid-output-missing-prime/torch] check()'s HTML does not offer explain:\n{page[:2000]}")


def test_the_docs_count_the_catalogue():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    said = f"plants {len(real.MISTAKES)} mistakes"
    assert said in readme, f"README.md does not say the catalogue {said!r} (tests/meta/_real_models.py)"


@pytest.mark.jax
@pytest.mark.parametrize("hook", ["none", "scale", "lift"])
def test_the_probes_hooks_give_the_same_gradients_in_every_framework(hook):
    # A probe's hypothesis (a derivative divided out, a ReLU passing every unit) is evaluated by
    # whichever framework is judged: torch's and JAX's must agree on it.
    from crosscheck import frameworks
    from crosscheck.declaring.model import register

    case = register(real.sigmoid_mlp(name="real_hooks"))
    problem = case.problem()
    z = real.SIG_X @ real.SIG_INIT["W1"] + real.SIG_INIT["b1"]
    tiny = float(np.finfo(np.float64).tiny)
    kw = {"none": {}, "scale": {"scale": {"z1": 1 + z ** 2}}, "lift": {"lift": {"z1": tiny}}}[hook]
    got = {fw: frameworks.gradients(fw, problem, dict(real.SIG_INIT), **kw)["params"]
           for fw in frameworks.FRAMEWORKS}
    first, *others = got
    for fw in others:
        for n, g in got[first].items():
            apart = float(np.max(np.abs(g - got[fw][n])) / (np.max(np.abs(g)) or 1.0))
            assert apart <= tolerances.local_rtol(), (
                f"[real_hooks/{fw}] {hook}, step 0: grad[{n}] {got[fw][n]} vs {first} {g} (rel. {apart:.2g} "
                f"> {tolerances.local_rtol():.2g})")


#: One mistake of each family a probe names, checked in a float32 run too.
FLOAT32 = ["rnn-dhnext-without-T", "sigmoid-output-missing-prime", "relu3-first-mask-removed", "maximum-kink"]


@pytest.mark.parametrize("key", FLOAT32)
def test_a_probe_names_the_mistake_in_float32_too(key):
    entry = next(e for e in real.MISTAKES if e[0] == key)
    first = crosscheck.check(real.build(entry), frameworks=("torch",), dtype="float32").first_divergence
    got = None if first is None else (first.question, first.step, first.explanation["kind"])
    assert got == ("local", entry[4], entry[3]), (
        f"[real_{key}/torch] float32: expected {entry[3]} at step {entry[4]}; got {got}: "
        f"{first.likely if first else 'nothing caught'}")
