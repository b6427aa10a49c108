"""The general training loop (crosscheck.loop): what a model declares beyond the documents'
loops reaches every implementation the same way, and a correct model agrees in each."""

from __future__ import annotations

import numpy as np
import pytest

import crosscheck
from crosscheck import optim
from crosscheck.loop import make_feed
from crosscheck.model import ModelError

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


def test_the_record_keeps_the_feed_and_the_json_the_batch_and_shuffle():
    result = crosscheck.check(line(batch=3, shuffle=2), frameworks=["torch"])
    ref, fw = result.trajectories["numpy"], result.trajectories["torch"]
    assert ref.feed is fw.feed or np.array_equal(ref.feed.order, fw.feed.order), "the feed differs"
    assert ref.steps == 9, f"3 epochs of 3 batches: {ref.steps} steps"
    hyper = result.to_json()["cases"]["line"]["hyper"]
    assert hyper["batch"] == 3 and hyper["shuffle"] == 2, f"hyper {hyper}"


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
    assert result.trajectories["numpy"].hyper["batch"] == "full"


@pytest.mark.parametrize("kw, words", [
    ({"batch": 0}, "batch must be"), ({"batch": 2.5}, "batch must be"),
    ({"shuffle": "yes"}, "shuffle must be"), ({"optimizer": "adam"}, "optimizer must be one of"),
    ({"sample_axis": 2}, "sample_axis must be 0 or 1"), ({"penalty": 3}, "penalty must be a function"),
    ({"state": {}}, "state must be a non-empty dict"),
    ({"update": lambda p, g, s: p}, "update must return (params, state)")])
def test_a_bad_declaration_is_one_line(kw, words):
    with pytest.raises(ModelError) as e:
        m = line(**kw)
        m.validate()
    assert words in str(e.value) and "\n" not in str(e.value), f"{kw}: {e.value}"
