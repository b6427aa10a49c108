"""``make bench``: where the time of a cross-check goes, on this machine.

Measures, each as the median of ``--repeat`` fresh processes where a process is the unit:

* the floor: importing numpy, torch and JAX, plus every case's reference run;
* ``crosscheck run`` (the cross-check, no plots) and ``crosscheck run --json --plots
  --html`` (what ``make report`` runs);
* per case and framework, the cost of one update step, warm (compiled, imported) and
  the first call in a process (JAX compiles then, unless its persistent cache has it).

It prints the ratio of run time to floor; the target is <= 1.5 on the 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FLOOR = ("import crosscheck, numpy, torch, jax\n"
         "from crosscheck import cases, runner\n"
         "for c in cases.CASES: runner.run(c)\n")


def wall(cmd: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def per_step() -> list[dict]:
    from crosscheck import cases, runner

    rows = []
    for case in cases.CASES:
        t = time.perf_counter()
        ref = runner.run(case)
        rows.append({"case": case, "framework": "numpy", "steps": ref.steps,
                     "first_s": time.perf_counter() - t, "warm_us_per_step": None})
        for fw in ("torch", "jax"):
            t = time.perf_counter()
            runner.run(case, fw)
            first = time.perf_counter() - t
            t = time.perf_counter()
            runner.run(case, fw)
            warm = time.perf_counter() - t
            rows.append({"case": case, "framework": fw, "steps": ref.steps, "first_s": first,
                         "warm_us_per_step": warm / ref.steps * 1e6})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m crosscheck.bench", description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3, help="processes per measurement (median)")
    p.add_argument("--json", help="also write the figures to this file")
    args = p.parse_args(argv)

    py = sys.executable
    floor = wall([py, "-c", FLOOR], args.repeat)
    run = wall([py, "-m", "crosscheck", "run"], args.repeat)
    with tempfile.TemporaryDirectory() as tmp:
        report = wall([py, "-m", "crosscheck", "run", "--json", f"{tmp}/r.json", "--plots", f"{tmp}/p",
                       "--html", f"{tmp}/index.html"], args.repeat)
    rows = per_step()

    print(f"{'case':<14} {'impl':<6} {'steps':>6} {'first call s':>13} {'warm us/step':>13}")
    for r in rows:
        warm = f"{r['warm_us_per_step']:.1f}" if r["warm_us_per_step"] is not None else "-"
        print(f"{r['case']:<14} {r['framework']:<6} {r['steps']:>6} {r['first_s']:>13.3f} {warm:>13}")
    print()
    print(f"floor (import numpy+torch+jax, all reference runs): {floor:6.2f} s")
    print(f"crosscheck run (all cases, both frameworks):        {run:6.2f} s   ratio {run / floor:.2f}")
    print(f"make report (run --json --plots --html):            {report:6.2f} s   ratio {report / floor:.2f}")
    print(f"target: run / floor <= 1.5 ({'met' if run / floor <= 1.5 else 'NOT met'}), "
          f"median of {args.repeat} processes each")
    if args.json:
        Path(args.json).write_text(json.dumps({"floor_s": floor, "run_s": run, "report_s": report,
                                               "ratio": run / floor, "per_step": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
