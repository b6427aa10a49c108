"""``make bench``: where the time and memory of a cross-check go, on this machine.

Every figure is measured here, now, in fresh processes, side by side in one run (so that
ratios compare like with like):

* **start-up**: the import floor (``import numpy, torch, jax, jax.numpy``), ``crosscheck
  run`` of every document case, and what ``make report`` runs (``--json --plots --html``),
  each the median of ``--repeat`` processes, with their ratio to the floor;
* **per step**: each case in each implementation, warm (imported, compiled) and its first
  call in a process;
* **long runs**: relu at 3, 30 and 300 thousand steps, against the floor of that many steps
  (the imports, plus the hand-written reference itself running them: what any check must
  at least do), with the peak memory of the largest process;
* **a wide model**: relu_class at ``--sizes 50,200,10`` (12 210 parameters, 3000 steps);
* **a realistic model**: a 784-128-10 MLP on 2,048 samples in shuffled batches of 64 with a
  hand-written Adam, 3 epochs: its check beside the sum of its three plain training runs (its
  NumPy loop, a torch.optim loop, an optax loop), in one process, each warm (issue 26's
  target: at most 1.5x);
* **optimizers and mini-batches**: one tanh MLP (64 samples, 3-16-2) per step in each
  implementation, with each declared optimizer and with shuffled mini-batches of 8, beside
  the plain full-batch SGD of the documents' loops.

The targets (issue 12) are printed beside the figures: run <= 1.3x the import floor,
torch <= 100 us a step on relu, the wide model <= 10 s and <= 1 GiB, 100 000 relu steps
<= 15 s at flat memory.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

IMPORTS = "import numpy, torch, jax, jax.numpy"
#: The floor of a long run: the imports, then the reference (the hand-written code) itself.
REFERENCE = IMPORTS + "\nfrom crosscheck import runner\nrunner.run('relu', epochs={epochs})\n"
#: A command run in a process of its own, reporting its wall time and the peak resident
#: memory of the largest process under it (the helper process included).
_MEASURE = """
import json, resource, subprocess, sys, time
t = time.perf_counter()
subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
print(json.dumps([time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024]))
"""
LONG = (3_000, 30_000, 300_000)


def measure(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and peak MiB of ``cmd``."""
    out = subprocess.run([sys.executable, "-c", _MEASURE, *cmd], capture_output=True, text=True, check=True)
    wall, peak = json.loads(out.stdout)
    return wall, peak


def median(cmd: list[str], repeat: int) -> tuple[float, float]:
    runs = [measure(cmd) for _ in range(repeat)]
    return statistics.median(w for w, _ in runs), max(p for _, p in runs)


def per_step() -> list[dict]:
    from crosscheck.declaring import cases
    from crosscheck.frameworks import FRAMEWORKS
    from crosscheck.running import runner

    rows = []
    for case in cases.CASES:
        t = time.perf_counter()
        ref = runner.run(case)
        first = time.perf_counter() - t
        t = time.perf_counter()
        runner.run(case)
        warm = time.perf_counter() - t
        rows.append({"case": case, "framework": "numpy", "steps": ref.steps, "first_s": first,
                     "warm_us_per_step": warm / ref.steps * 1e6})
        for fw in FRAMEWORKS:
            t = time.perf_counter()
            runner.run(case, fw)
            first = time.perf_counter() - t
            t = time.perf_counter()
            runner.run(case, fw)
            warm = time.perf_counter() - t
            rows.append({"case": case, "framework": fw, "steps": ref.steps, "first_s": first,
                         "warm_us_per_step": warm / ref.steps * 1e6})
    return rows


def _mlp(name: str, **kw):
    """The optimizers' bench model: a 3-16-2 tanh MLP on 64 samples, squared error."""
    import numpy as np

    from crosscheck import Model

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 3)), rng.normal(size=(64, 2))

    def forward(xp, p, x):
        return xp.tanh(x @ p["W1"] + p["b1"]) @ p["W2"] + p["b2"]

    def loss(xp, out, y):
        return xp.mean((out - y) ** 2)

    def backward(p, x, y):
        h = np.tanh(x @ p["W1"] + p["b1"])
        d = 2 * (h @ p["W2"] + p["b2"] - y) / y.size
        dz = (d @ p["W2"].T) * (1 - h ** 2)
        return {"W1": x.T @ dz, "b1": dz.sum(0), "W2": h.T @ d, "b2": d.sum(0)}

    init = {"W1": rng.normal(size=(3, 16)) * 0.5, "b1": np.zeros(16), "W2": rng.normal(size=(16, 2)) * 0.5,
            "b2": np.zeros(2)}
    return Model(name, x, y, init, forward, loss, backward, lr=0.01, epochs=kw.pop("epochs", 200), **kw)


def optimizer_steps() -> list[dict]:
    """Warm microseconds a step of the bench MLP, per optimizer and for mini-batches."""
    from crosscheck import optim
    from crosscheck.declaring.model import register
    from crosscheck.frameworks import FRAMEWORKS
    from crosscheck.running import runner

    models = [_mlp("sgd_full"), _mlp("sgd_batch8_shuffled", batch=8, shuffle=0, epochs=25)]
    models += [_mlp(f"{n.lower()}_full", optimizer=o) for n, o in (
        ("SGD_momentum", optim.SGD(momentum=0.9)), ("Adam", optim.Adam()), ("AdamW", optim.AdamW()),
        ("RMSprop", optim.RMSprop()), ("Adagrad", optim.Adagrad(eps_inside_sqrt=True)))]
    rows = []
    for m in models:
        name = register(m).name
        for fw in ("numpy", *FRAMEWORKS):
            runner.run(name, fw)
            t = time.perf_counter()
            traj = runner.run(name, fw)
            rows.append({"model": name, "framework": fw, "steps": traj.steps,
                         "warm_us_per_step": (time.perf_counter() - t) / traj.steps * 1e6})
    return rows


def _realistic_model(epochs: int = 3):
    """A course exercise's size: a 784-128-10 ReLU MLP on 2,048 samples, mini-batches of 64,
    shuffled, a hand-written Adam against ``Adam()``; softmax cross-entropy, integer labels."""
    import numpy as np

    from crosscheck import Model
    from crosscheck.optim import Adam

    rng = np.random.default_rng(0)
    x, labels = rng.normal(size=(2048, 784)) * 0.3, rng.integers(0, 10, size=2048)
    lr, b1, b2, eps = 1e-3, 0.9, 0.999, 1e-8

    def forward(xp, p, x):
        return xp.maximum(x @ p["W1"] + p["b1"], 0.0) @ p["W2"] + p["b2"]

    def loss(xp, s, y):
        s = s - xp.max(s, axis=1, keepdims=True)
        logp = s - xp.log(xp.sum(xp.exp(s), axis=1, keepdims=True))
        return -xp.mean(xp.sum(xp.astype(y[:, None] == xp.arange(10), s.dtype) * logp, axis=1))

    def backward(p, x, y):
        z = x @ p["W1"] + p["b1"]
        h = np.maximum(z, 0)
        s = h @ p["W2"] + p["b2"]
        e = np.exp(s - s.max(axis=1, keepdims=True))
        d = (e / e.sum(axis=1, keepdims=True) - np.eye(10)[y]) / len(x)
        dz = (d @ p["W2"].T) * (z > 0)
        return {"W1": x.T @ dz, "b1": dz.sum(0), "W2": h.T @ d, "b2": d.sum(0)}

    def update(p, g, state):
        t = state["t"] = state.get("t", 0) + 1
        new = {}
        for k in p:
            m = state[f"m{k}"] = b1 * state.get(f"m{k}", 0) + (1 - b1) * g[k]
            v = state[f"v{k}"] = b2 * state.get(f"v{k}", 0) + (1 - b2) * g[k] ** 2
            new[k] = p[k] - lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)
        return new, state

    init = {"W1": rng.normal(size=(784, 128)) * 0.05, "b1": np.full(128, 0.01),
            "W2": rng.normal(size=(128, 10)) * 0.1, "b2": np.zeros(10)}
    return Model("mlp_784_128_10", x, labels, init, forward, loss, backward, lr=lr, epochs=epochs, batch=64,
                 shuffle=0, optimizer=Adam(betas=(b1, b2), eps=eps), update=update)


def _plain_runs(model) -> dict[str, float]:
    """Seconds of the model's three plain training runs, each warm, none recorded or checked:
    its own NumPy loop (backward and update), a torch.optim loop and an optax loop, over the
    same batches."""
    import jax
    import numpy as np
    import optax
    import torch
    from array_api_compat import array_namespace

    import crosscheck.frameworks.jax_models  # noqa: F401  (float64)

    feed, (x, y) = model.feed(model.epochs), model.data
    batches = [feed.index(k) for k in range(feed.steps)]
    out = {}
    t = time.perf_counter()
    p, state = dict(model.params0), {}
    for i in batches:
        p, state = model.update(p, model.backward(p, x[i], y[i]), state)
    out["numpy"] = time.perf_counter() - t

    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in model.params0.items()}
    opt = torch.optim.Adam(list(tp.values()), lr=model.lr, foreach=False)
    xp = array_namespace(tx)
    t = time.perf_counter()
    for i in batches:
        opt.zero_grad()
        model.loss(xp, model.forward(xp, tp, tx[i]), ty[i]).backward()
        opt.step()
    out["torch"] = time.perf_counter() - t

    jp = {k: jax.numpy.asarray(v) for k, v in model.params0.items()}
    adam = optax.adam(model.lr)
    jxp = array_namespace(jax.numpy.zeros(1))

    @jax.jit
    def step(p, s, xb, yb):
        g = jax.grad(lambda q: model.loss(jxp, model.forward(jxp, q, xb), yb))(p)
        u, s = adam.update(g, s, p)
        return optax.apply_updates(p, u), s
    s = adam.init(jp)
    jx, jy = jax.numpy.asarray(x), jax.numpy.asarray(y)
    step(jp, s, jx[batches[0]], jy[batches[0]])   # compiled once, not timed
    step(jp, s, jx[batches[-1]], jy[batches[-1]])
    t = time.perf_counter()
    for i in batches:
        jp, s = step(jp, s, jx[i], jy[i])
    jax.block_until_ready(jp)
    out["jax"] = time.perf_counter() - t
    del np
    return out


def realistic() -> dict:
    """The realistic model's check, warm, beside the sum of its three plain training runs."""
    import crosscheck

    model = _realistic_model()
    crosscheck.check(model)   # warm: imports, compilation
    plain = _plain_runs(model)
    t = time.perf_counter()
    result = crosscheck.check(model)
    checked = time.perf_counter() - t
    return {"model": model.name, "steps": result.trajectories["numpy"].steps, "agree": result.agree,
            "plain_s": plain, "check_s": checked}


def _machine() -> str:
    import os

    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m crosscheck.bench", description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3, help="processes per start-up measurement (median)")
    p.add_argument("--long", type=int, nargs="*", default=list(LONG), metavar="STEPS",
                   help="relu run lengths to measure (default: 3000 30000 300000)")
    p.add_argument("--json", help="also write the figures to this file")
    p.add_argument("--optimizers", action="store_true", help="only the optimizers' and mini-batches' table")
    args = p.parse_args(argv)
    py, cc = sys.executable, [sys.executable, "-m", "crosscheck"]
    figures: dict = {"machine": _machine()}
    print(f"machine: {figures['machine']}\n")
    if not args.optimizers:
        _startup_and_runs(args, py, cc, figures)

    _optimizers(figures)
    r = figures["realistic"] = realistic()
    total = sum(r["plain_s"].values())
    print(f"\nrealistic: {r['model']} (2,048 samples, batches of 64, Adam, 3 epochs: {r['steps']} steps): "
          f"check {r['check_s']:.2f} s against its three plain runs' {total:.2f} s "
          f"({', '.join(f'{k} {v:.2f}' for k, v in r['plain_s'].items())}): {r['check_s'] / total:.2f}x "
          f"(target <= 1.5x: {'met' if r['check_s'] <= 1.5 * total else 'NOT met'}); "
          f"{'agree' if r['agree'] else 'MISMATCH'}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2) + "\n")
    return 0


def _startup_and_runs(args: argparse.Namespace, py: str, cc: list[str], figures: dict) -> None:
    floor, _ = median([py, "-c", IMPORTS], args.repeat)
    run, run_mb = median([*cc, "run"], args.repeat)
    with tempfile.TemporaryDirectory() as tmp:
        report, _ = median([*cc, "run", "--json", f"{tmp}/r.json", "--plots", f"{tmp}/p",
                            "--html", f"{tmp}/index.html"], args.repeat)
    figures.update(floor_s=floor, run_s=run, run_peak_mib=run_mb, report_s=report)
    print(f"import floor (import numpy, torch, jax):       {floor:6.2f} s")
    print(f"run (6 cases x 2 frameworks):                  {run:6.2f} s   {run / floor:.2f}x the floor  "
          f"(target <= 1.3x: {'met' if run / floor <= 1.3 else 'NOT met'}), peak {run_mb:.0f} MiB")
    print(f"report (run --json --plots --html):            {report:6.2f} s   {report / floor:.2f}x the floor")
    print(f"(median of {args.repeat} processes each)\n")

    rows = per_step()
    figures["per_step"] = rows
    print(f"{'case':<14} {'impl':<6} {'steps':>6} {'first call s':>13} {'warm us/step':>13}")
    for r in rows:
        print(f"{r['case']:<14} {r['framework']:<6} {r['steps']:>6} {r['first_s']:>13.3f} "
              f"{r['warm_us_per_step']:>13.1f}")
    us = next(r["warm_us_per_step"] for r in rows if (r["case"], r["framework"]) == ("relu", "torch"))
    print(f"torch on relu: {us:.0f} us a step (target <= 100: {'met' if us <= 100 else 'NOT met'})\n")

    figures["long"] = []
    print(f"{'relu steps':>10} {'floor s':>8} {'run s':>8} {'ratio':>6} {'us/step':>8} {'peak MiB':>9}")
    for steps in args.long:
        base, _ = measure([py, "-c", REFERENCE.format(epochs=steps)])
        wall, peak = measure([*cc, "run", "relu", "--epochs", str(steps)])
        figures["long"].append({"steps": steps, "floor_s": base, "run_s": wall, "peak_mib": peak})
        print(f"{steps:>10} {base:>8.2f} {wall:>8.2f} {wall / base:>6.2f} {wall / steps * 1e6:>8.1f} "
              f"{peak:>9.0f}")
    print("(floor: the imports and the reference's own run of as many steps)\n")

    wall, peak = measure([*cc, "run", "relu_class", "--sizes", "50,200,10"])
    figures["wide"] = {"run_s": wall, "peak_mib": peak}
    print(f"relu_class --sizes 50,200,10 (12 210 parameters, 3000 steps): {wall:.2f} s, peak {peak:.0f} MiB "
          f"(target <= 10 s and <= 1024 MiB: {'met' if wall <= 10 and peak <= 1024 else 'NOT met'})")



def _optimizers(figures: dict) -> None:
    rows = optimizer_steps()
    figures["optimizers"] = rows
    base = {r["framework"]: r["warm_us_per_step"] for r in rows if r["model"] == "sgd_full"}
    print(f"\n{'model (3-16-2 MLP, 64 samples)':<24} {'impl':<6} {'steps':>6} {'warm us/step':>13} "
          f"{'x SGD':>6}")
    for r in rows:
        print(f"{r['model']:<24} {r['framework']:<6} {r['steps']:>6} {r['warm_us_per_step']:>13.1f} "
              f"{r['warm_us_per_step'] / base[r['framework']]:>6.2f}")
    print("(x SGD: beside the plain full-batch SGD step of the same implementation)")


if __name__ == "__main__":
    sys.exit(main())
