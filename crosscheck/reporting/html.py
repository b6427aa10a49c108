"""``report/index.html``: the whole report as one self-contained page (Jinja2).

The verdict table, each case's diagnosis, transcript status and plots (embedded as PNG
data), for a mismatch its first divergence and what it means, the kink table and the
versions. It opens offline: no network, CDN, server, script or style from outside.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from crosscheck.reporting import plots, report
from crosscheck.running.versions import versions

TEMPLATES = Path(__file__).resolve().parents[1] / "templates"   # crosscheck/templates

#: What each question's failure means, for the reader of a mismatch.
EXPLAIN = {
    "local": ("The manual gradient, evaluated at this framework's own parameters, differs from "
              "autograd there: a line of the hand-written backward is wrong at this step (or from it, "
              "once a ReLU unit switches)."),
    "global": ("The trajectories part beyond what rounding can explain, before any manual gradient "
               "is found wrong: the training loop itself differs (the update, its order, the data or "
               "the samples' order)."),
    "nothing compared": ("No step's gradients could be compared, so nothing was checked: from step 0 "
                         "the runs are not finite numbers (the loss, a gradient or the first update), "
                         "or the two frameworks' autograds part beyond rounding (a kink, where each "
                         "takes its own convention); the verdict above says which."),
    None: "The runs agree step by step, but do qualitatively different things (dynamics or dead units).",
}


def _case_section(r: report.CaseResult, plot_dir: Path, python: bool = False) -> dict[str, Any]:
    c = r.declared
    origin = (f"{c.document}, {c.cell}" if c.document else
              f"your model, from {c.origin}" if c.origin else "your model")
    transcript = None
    if r.transcript is not None:
        t = r.transcript
        transcript = (f"transcript: matches the document's {t['lines']} printed lines"
                      if t["status"] == "match" else
                      f"transcript: MISMATCH with the document: {t['differences'][0]}")
    mismatches, explained = [], set()
    for fw, comp in r.comparisons.items():
        if not r.agree(fw):
            first = comp.first
            text = EXPLAIN.get(first.question if first else comp.question, EXPLAIN[None])
            if first is not None and first.explanation:
                text = f"Likely: {first.likely.rstrip('?.')}. " + text
            command = report.next_command(r, fw, python=python)
            mismatches.append({"verdict": f"{fw}: {report.verdict(r, fw)}",
                               "explanation": "" if text in explained else text,
                               "command": "" if (text, command) in explained else command})
            explained.add(text)
            explained.add((text, command))
    images = []
    for name, alt in zip(plots.filenames(r.case), ("errors against step", "loss", "parameters"), strict=True):
        path = plot_dir / name
        if path.is_file():
            images.append({"data": base64.b64encode(path.read_bytes()).decode("ascii"),
                           "alt": f"{r.case}: {alt}"})
    return {"name": r.case, "origin": origin, "diagnosis": r.diagnosis, "transcript": transcript,
            "transcript_ok": r.transcript_ok, "mismatches": mismatches, "plots": images}


def _environment():
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    return Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]))


def _rows(results: Sequence[report.CaseResult]) -> list[dict[str, Any]]:
    """The verdict table's rows: one per case and framework."""
    rows = []
    for r in results:
        for fw in r.comparisons:
            rows.append({"case": r.case, "framework": fw, "agree": r.agree(fw), **report.row(r, fw),
                         "verdict": report.verdict(r, fw), "state": "ok" if r.agree(fw) else "bad"})
        for fw, why in r.cannot.items():   # not run: neither agree nor a mistake (grey)
            rows.append({"case": r.case, "framework": fw, "agree": False, "state": "na",
                         **dict.fromkeys(("local", "loss", "grads", "params", "envelope"), "-"),
                         "verdict": f"CANNOT EXPRESS: {why}"})
    return rows


def fragment(r: report.CaseResult, dtype: str) -> str:
    """One case's verdicts, diagnosis, mismatch explanations and errors and loss plots, as an
    HTML fragment: what ``crosscheck.check``'s result shows in a notebook."""
    import tempfile

    from crosscheck.judging import transcript

    with tempfile.TemporaryDirectory(prefix="crosscheck-plots-") as tmp:   # errors and loss only
        errors, loss, _ = (Path(tmp) / name for name in plots.filenames(r.case))
        plots.errors_plot(report.error_series(r), r.case, errors)
        plots.loss_plot(r.trajs, transcript.printed_losses(r.case, r.reference), loss, r.diagnosis)
        section = _case_section(r, Path(tmp), python=True)
    agree = all(r.agree(fw) for fw in r.comparisons)
    return _environment().get_template("result.html.j2").render(case=section, rows=_rows([r]),
                                                               agree=agree, dtype=dtype)


def walk_fragment(walk: Any) -> str:
    """``explain``'s walk of one step (:class:`crosscheck.reporting.explain.Walk`) as an HTML
    fragment: what ``crosscheck.explain``'s result shows in a notebook."""
    return _environment().get_template("walk.html.j2").render(walk=walk)


def render(results: Sequence[report.CaseResult], dtype: str, plot_dir: Path,
           kinks: Sequence[Any] = ()) -> str:
    """The page, with the plots read from ``plot_dir`` (as :func:`plots.write` left them)."""
    env = _environment()
    rows = _rows(results)
    kink_rows = [{"framework": k.framework, "spelling": k.spelling, "at_zero": f"{k.at_zero:g}",
                  "expected": "-" if k.expected is None else f"{k.expected:g}",
                  "as_expected": k.as_expected, "agrees": k.agrees,
                  "kink_case": k.kink_case_text}
                 for k in kinks]
    return env.get_template("report.html.j2").render(
        summary=report.summary(results), dtype=dtype, versions=versions(), rows=rows,
        legend=report.TABLE_LEGEND, cases=[_case_section(r, plot_dir) for r in results], kinks=kink_rows)
