"""crosscheck.optim: every declaration, run by torch.optim and by optax as configured, makes
the same update to rounding; and every difference the conventions table says remains does
remain (so "cannot express" is a measured fact of the versions, never a guess)."""

from __future__ import annotations

import numpy as np
import pytest

from crosscheck import optim, tolerances

pytestmark = [pytest.mark.torch, pytest.mark.jax]

STEPS = 6
LR = 0.05


def _run(opt: optim.Optimizer, framework: str) -> list[np.ndarray]:
    """STEPS updates of one parameter from fixed gradients, by ``framework``'s optimizer."""
    rng = np.random.default_rng(0)
    p0 = rng.normal(size=(3, 4))
    grads = [rng.normal(size=(3, 4)) * 10.0 ** -k for k in range(STEPS)]   # shrinking: eps matters
    update, _ = optim.reference_update(opt, LR, (framework,))
    params, state, out = {"w": p0}, {}, []
    for g in grads:
        params, state = update(params, {"w": g}, state)
        out.append(params["w"])
    return out


EXPRESSIBLE = [optim.Adagrad(eps_inside_sqrt=True, eps=1e-3),
               optim.SGD(), optim.SGD(momentum=0.9), optim.SGD(momentum=0.9, nesterov=True),
               optim.SGD(momentum=0.5, weight_decay=0.1), optim.Adam(), optim.Adam(weight_decay=0.1),
               optim.Adam(betas=(0.5, 0.9), eps=1e-3), optim.AdamW(), optim.RMSprop(),
               optim.RMSprop(momentum=0.9, centered=True, eps=1e-3)]


@pytest.mark.parametrize("opt", EXPRESSIBLE, ids=lambda o: o.describe())
def test_torch_optim_and_optax_make_the_same_update(opt):
    a, b = _run(opt, "torch"), _run(opt, "jax")
    for k, (x, y) in enumerate(zip(a, b, strict=True)):
        err = np.max(np.abs(x - y)) / np.max(np.abs(x))
        tol = tolerances.update_rtol("float64", opt.memory(k), 1.0)
        assert err <= tol, f"[{opt.describe()}] step {k}: torch.optim {x.ravel()[0]!r} vs optax " \
                           f"{y.ravel()[0]!r}, normwise {err:.3g} > {tol:.3g}"


@pytest.mark.parametrize("opt, framework", [
    (optim.Adagrad(eps=1e-2), "jax"),
    (optim.SGD(momentum=0.9, dampening=0.5), "jax"), (optim.Adam(amsgrad=True), "jax")],
    ids=lambda v: v.describe() if isinstance(v, optim.Optimizer) else v)
def test_what_a_framework_cannot_express_is_said(opt, framework):
    assert opt.cannot(framework), f"[{opt.describe()}] {framework} should be unable to express it"
    with pytest.raises(optim.CannotExpress):
        opt.for_jax(LR) if framework == "jax" else opt.for_torch([], LR)


def test_adagrad_eps_conventions_really_differ():
    """The table's Adagrad row: torch.optim's sqrt(sum) + eps and optax's sqrt(sum + eps) part
    beyond rounding (a large eps shows it at step 0), so neither can stand in for the other."""
    outside = _run(optim.Adagrad(eps=1e-2), "torch")
    inside = _run(optim.Adagrad(eps=1e-2, eps_inside_sqrt=True), "jax")
    through = _run(optim.Adagrad(eps=1e-2, eps_inside_sqrt=True), "torch")   # eps=0, folded into the sum
    for k, (a, b) in enumerate(zip(inside, through, strict=True)):
        tol = tolerances.update_rtol("float64", k + 1, 1.0)
        assert np.max(np.abs(a - b)) / np.max(np.abs(a)) <= tol, \
            f"[Adagrad eps inside] torch.optim (eps=0, accumulator + eps) vs optax at step {k}"
    err = np.max(np.abs(outside[0] - inside[0])) / np.max(np.abs(outside[0]))
    assert err > 1e3 * tolerances.update_rtol("float64", 1, 1.0), \
        f"[Adagrad eps=1e-2] torch.optim and optax agree ({err:.3g}): the conventions table is wrong"


def test_adam_amsgrad_conventions_really_differ():
    """optax's amsgrad keeps the maximum of the corrected second moment, torch.optim's of the
    raw one: on gradients that shrink, the two part."""
    torch_run = _run(optim.Adam(amsgrad=True), "torch")
    import jax.numpy as jnp
    import optax

    rng = np.random.default_rng(0)
    p = {"w": jnp.asarray(rng.normal(size=(3, 4)))}
    grads = [rng.normal(size=(3, 4)) * 10.0 ** -k for k in range(STEPS)]
    tx = optax.amsgrad(LR)
    s = tx.init(p)
    for g in grads:
        u, s = tx.update({"w": jnp.asarray(g)}, s, p)
        p = optax.apply_updates(p, u)
    err = np.max(np.abs(np.asarray(p["w"]) - torch_run[-1])) / np.max(np.abs(torch_run[-1]))
    assert err > 1e3 * tolerances.update_rtol("float64", 10, 1.0), \
        f"[Adam amsgrad] torch.optim and optax.amsgrad agree ({err:.3g}): the conventions table is wrong"


def test_declarations_are_hashable_and_described():
    for opt in EXPRESSIBLE:
        hash(opt)
        assert opt.describe().startswith(type(opt).__name__)
    assert set(optim.OPTIMIZERS) == {"SGD", "Adam", "AdamW", "RMSprop", "Adagrad"}


def test_the_docs_table_of_conventions_is_the_recorded_one():
    from pathlib import Path

    page = (Path(__file__).parent.parent / "docs" / "how-to" / "real-loops.md").read_text()
    for row in optim.CONVENTIONS:
        assert "| " + " | ".join(row) + " |" in page, f"docs/how-to/real-loops.md lacks the row {row}"


@pytest.mark.parametrize("make, words", [
    (lambda: optim.Adam(betas=(1.5, 0.999)), "betas must be two numbers in [0, 1)"),
    (lambda: optim.Adam(eps=-1e-8), "eps must be a number >= 0"),
    (lambda: optim.SGD(momentum=-1), "momentum must be a number >= 0"),
    (lambda: optim.SGD(nesterov=True), "nesterov needs a momentum above 0"),
    (lambda: optim.RMSprop(centered="yes"), "centered must be True or False")],
    ids=["betas", "eps", "momentum", "nesterov", "centered"])
def test_a_bad_setting_is_one_line(make, words):
    with pytest.raises(ValueError) as e:
        make()
    assert words in str(e.value) and "\n" not in str(e.value), str(e.value)


def test_betas_given_as_a_list_are_a_tuple_and_hash():
    assert optim.Adam(betas=[0.9, 0.99]) == optim.Adam(betas=(0.9, 0.99))
    assert hash(optim.Adam(betas=[0.9, 0.99])) == hash(optim.Adam(betas=(0.9, 0.99)))


def test_the_conventions_table_was_measured_on_the_pinned_versions():
    """The table is a measurement of two releases: where constraints.txt pins others, it (and
    this file's checks of it) must be measured again."""
    from pathlib import Path

    pins = dict(line.split("==") for line in (Path(__file__).parent.parent / "constraints.txt").read_text()
                .splitlines() if "==" in line and not line.startswith("#"))
    pinned = {k: pins[k] for k in optim.CONVENTIONS_VERSIONS}
    assert pinned == optim.CONVENTIONS_VERSIONS, \
        f"constraints.txt pins {pinned}, the table was measured on {optim.CONVENTIONS_VERSIONS}"
