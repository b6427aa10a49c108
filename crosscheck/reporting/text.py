"""The verdicts in words: the terminal table (:func:`table`, :data:`WIDTH` columns), each
framework's verdict line, what a run does (:func:`diagnose`), the summary line and the
command that walks a mismatch (:func:`next_command`). The page (``crosscheck.reporting.html``) and the
notebook view show the same words.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from crosscheck import tolerances
from crosscheck.judging import diagnostics, metrics, transcript
from crosscheck.running.record import Trajectory

if TYPE_CHECKING:
    from crosscheck.reporting.report import CaseResult


def _fmt(v: float) -> str:
    return f"{v:.4f}" if abs(v) >= 1e-3 else f"{v:.3g}"


def _stochastic(ref: Trajectory) -> str:
    """What makes a run's step losses move with its batches, in words ("" where nothing does)."""
    feed = ref.feed
    if feed is None:
        return ""
    parts = [f"mini-batches of {feed.batch}" if feed.per_epoch > 1 else "",
             "shuffled" if ref.hyper.get("shuffle") is not None else "", "noise" if feed.noise else ""]
    return ", ".join(p for p in parts if p)


def diagnose(r: CaseResult) -> str:
    """One line: what the run really does, from every step."""
    d, ref = r.dynamics["numpy"], r.reference
    per_epoch = ref.steps // ref.epochs
    if d.kind == "diverging":
        bad = metrics.diverges_at(ref)
        where = f"; non-finite from step {bad}" if bad is not None else ""
        line = f"diverging from step {d.start_step}{where}"
    elif d.kind == "stalled":
        zero = all(np.all(g[-per_epoch:] == 0) for g in ref.grads.values())
        line = (f"stalled from step {d.start_step} at loss {_fmt(d.final_loss)}: "
                "a fixed point, not the target" + ("; every gradient exactly 0" if zero else ""))
    elif d.kind == "oscillating" and d.period:
        values = " <-> ".join(_fmt(v) for v in d.cycle_losses)
        line = (f"period-{d.period} cycle {values} from epoch {d.start_step // per_epoch}" if d.settled
                else f"settling toward a period-{d.period} cycle {values}")
        printed = transcript.printed_losses(r.case, ref)
        if printed and len({e % d.period for e in printed}) == 1:
            line += " (every printed epoch falls on the same phase: the printout shows one value)"
    elif _stochastic(ref):
        e = ref.epoch_loss
        line = (f"epoch loss {_fmt(float(e[0]))} -> {_fmt(float(e[-1]))} over {len(e)} epochs "
                f"({_stochastic(ref)}: no dynamics read from a loss that moves with each batch)")
    elif d.kind == "oscillating":
        line = "oscillating without a clear period"
    else:
        how = ("monotone" if d.monotone else
               f"not monotone, swinging with period {d.period} and a shrinking swing" if d.period else
               "not monotone")
        line = f"converging, {how}; loss {_fmt(d.final_loss)} at the end"
    if r.stability is None and d.kind in ("oscillating", "stalled") and r.declared.curvature \
            and diagnostics.curvature_too_costly(ref):
        line += f"; curvature not computed (more than {diagnostics.MAX_CURVATURE_PARAMS} parameters)"
    if r.stability is not None:
        m = r.stability.points[-1]
        verdict = "> 2: unstable" if m["lr_times_lambda"] > 2 else "< 2"
        need = (f"GD needs lr < {r.stability.bound:.3g}" if np.isfinite(r.stability.bound)
                else "no curvature there, so no lr is too large")
        line += f"; lr*lambda_max = {m['lr_times_lambda']:.3g} at the nearest minimum ({verdict}; {need})"
    if r.envelope is not None and r.envelope.horizon is not None:
        line += (f"; predictable up to step {r.envelope.horizon}: there a 1-ulp change of the initial "
                 f"values has grown past {tolerances.PREDICTABLE:g} (chaotic)")
    for u in r.dead["numpy"]:
        if u["always"]:
            line += f"; {u['layer']} unit {u['name']} off on every sample at every step (never learns)"
        else:
            first = min(u["from_step"].values())
            line += f"; {u['layer']} unit {u['name']} off on sample(s) {u['samples']} from step {first}"
    return line


def summary(results: Sequence[CaseResult]) -> str:
    """One line: how many pairs agree, how many do not, and the transcripts."""
    frameworks = sorted({fw for r in results for fw in r.comparisons})
    pairs = [(r, fw) for r in results for fw in r.comparisons]
    agree = sum(r.agree(fw) and not r.diverging for r, fw in pairs)
    diverging = sum(r.agree(fw) and r.diverging for r, fw in pairs)
    mismatch = len(pairs) - agree - diverging
    cannot = sum(len(r.cannot) for r in results)
    frameworks = sorted({*frameworks, *(fw for r in results for fw in r.cannot)})
    line = (f"{len(results)} case{'s' if len(results) != 1 else ''} x {len(frameworks)} "
            f"framework{'s' if len(frameworks) != 1 else ''}: {agree} agree, {mismatch} mismatch"
            + (f", {diverging} diverging alike" if diverging else "")
            + (f", {cannot} cannot express the optimizer" if cannot else ""))
    documents = [r for r in results if r.transcript is not None]
    if documents:
        matched = sum(r.transcript_ok for r in documents)
        line += f"; transcripts {matched}/{len(documents)} match the documents"
    return line


#: What the table's columns are, printed under it.
TABLE_LEGEND = ("local: the manual backward against autograd at the framework's own parameters, every "
                "step; loss/grads/params: the trajectories against the reference; envelope: what "
                "rounding alone may move them by (measured). All are normwise relative errors, the "
                "worst over the steps compared.")


def verdict(r: CaseResult, fw: str) -> str:
    c = r.comparisons[fw]
    split = ("" if c.autograd_split is None else
             f"; judged up to step {c.autograd_split}, where torch's and jax's autograd part by "
             f"{c.autograd_disagreement:.2g} at the same parameters, beyond rounding: neither can "
             "judge the manual backward from there")
    if r.agree(fw):
        if r.diverging:
            return (f"DIVERGING, the same in all (non-finite from step {r.envelope.diverges_at}{split})"
                    if r.envelope and r.envelope.diverges_at is not None else
                    f"DIVERGING, the same in all{split}")
        if split:
            return f"agree (manual gradients at steps 0-{c.local_steps - 1}{split})"
        if c.horizon is not None:
            return (f"agree (manual gradients at all {c.local_steps} steps; trajectories up to step "
                    f"{c.horizon}, the predictability horizon)")
        return "agree"
    if c.first is not None:
        what = {"local": "manual backward", "update": "manual update"}.get(c.first.question, "trajectories")
        return f"MISMATCH ({what}): {c.first}"
    if c.question == "nothing compared" and c.autograd_split == 0:
        return (f"MISMATCH (nothing compared): [{r.case}/{fw}] torch's and jax's autograd part at step 0 "
                f"by {c.autograd_disagreement:.2g} at the same parameters, beyond rounding (a kink, where "
                "each takes its own convention?): neither can judge the manual backward there")
    if c.question == "nothing compared":
        where = [k if k != "numpy" else "the reference" for k, s in c.diverges_at.items() if s == 0]
        where = " and ".join(where) + (" are" if len(where) > 1 else " is") if where else "the run is"
        return (f"MISMATCH (nothing compared): [{r.case}/{fw}] {where} not finite from step 0 "
                "(loss, gradients or parameters): no step's gradients could be compared")
    return f"MISMATCH (behaviour): {behaviour_difference(r, fw)}"


def behaviour_difference(r: CaseResult, fw: str) -> str:
    """What differs between the reference's run and ``fw``'s, qualitatively, in words."""
    def dyn(d: diagnostics.Dynamics) -> str:
        cycle = f", cycle {', '.join(_fmt(v) for v in d.cycle_losses)}" if d.cycle_losses else ""
        period = f" period {d.period}" if d.period else ""
        start = f" from step {d.start_step}" if d.start_step is not None else ""
        return f"{d.kind}{period}{cycle}{start}"

    a, b = dyn(r.dynamics["numpy"]), dyn(r.dynamics[fw])
    parts = [f"reference {a}, {fw} {b}"] if a != b else []
    dead_a, dead_b = ({u["name"]: u["from_step"] for u in r.dead[k]} for k in ("numpy", fw))
    if dead_a != dead_b:
        parts.append(f"dead units: reference {dead_a or 'none'}, {fw} {dead_b or 'none'}")
    return "; ".join(parts) or "different cycle values"


def row(r: CaseResult, fw: str) -> dict[str, str]:
    """One framework's numbers as the table and the page show them."""
    c = r.comparisons[fw]
    e = c.max_rel_err
    stepped = len(c.global_errors) > 0   # "-": no step compared, where 0 would read as agreement
    return {"local": f"{max(c.local_max.values(), default=0.0):.2e}" if c.local_steps else "-",
            **{k: f"{e[k]:.2e}" if stepped else "-" for k in ("loss", "grads", "params")},
            "envelope": f"{c.tol:.1e}"}


def next_command(r: CaseResult, fw: str, python: bool = False) -> str | None:
    """The command that walks ``fw``'s first divergence line by line, where there is one
    and the case can be named on the command line (a document case, or a model from a file);
    ``python``: the call that does it from Python instead (``crosscheck.explain(model,
    step=K)``: a notebook's model, which the command line cannot find by name)."""
    c, case = r.comparisons[fw], r.declared
    if c.first is None or c.first.quantity in ("divergence", "update"):
        return None   # (explain walks the backward; an update's mistake is said on its own line)
    if python and case.document is None:
        redo = metrics.rerun_overrides(r.reference, case)
        hyper = case.problem().hyper
        given = "".join(f", {k}={v!r}" for k, v in redo.items()
                        if k in ("lr", "epochs") and v != hyper.get(k))
        return f"crosscheck.explain(model, step={c.first.step}{given})"
    if case.document is not None:
        spec = case.name
    elif case.origin is not None:
        spec = f"{case.origin}:{case.name}"
    else:
        return None
    def plain(v: Any) -> Any:   # a recorded tuple may come back as a list
        return list(v) if isinstance(v, (tuple, list)) else v

    default = {k: plain(v) for k, v in case.problem().hyper.items()}
    redo = metrics.rerun_overrides(r.reference, case)
    options = "".join(f" --{k} {','.join(map(str, v)) if isinstance(v, tuple) else v}"
                      for k, v in redo.items() if plain(v) != default.get(k))
    return f"crosscheck explain {spec} --step {c.first.step}{options}"


#: The terminal table's width: a row per case and framework, what was found wrapped under it.
WIDTH = 100


def _wrap(label: str, text: str) -> list[str]:
    """``text`` under a row, after ``label``, wrapped at :data:`WIDTH` (a command is never
    broken: it is copied as it stands)."""
    first = f"  {label} " if label else "  "
    if label == "next:":
        return [first + text]
    return textwrap.wrap(text, WIDTH, initial_indent=first, subsequent_indent=" " * len(first),
                         break_long_words=False, break_on_hyphens=False)


def _headline(r: CaseResult, fw: str) -> tuple[str, list[str]]:
    """:func:`verdict` as the table shows it: its short form on the row, the rest under it."""
    text = verdict(r, fw)
    if text.startswith("MISMATCH") and ": " in text:
        head, detail = text.split(": ", 1)
        label = "first:" if r.comparisons[fw].first is not None else "why:"
        return head, _wrap(label, detail.removeprefix(f"[{r.case}/{fw}] "))
    if text.endswith(")") and " (" in text:
        head, detail = text.split(" (", 1)
        return head, _wrap("", f"({detail}")
    return text, []


def table(results: Sequence[CaseResult], quiet: bool = False) -> str:
    """The verdicts, a row per case and framework with its verdict in short, and under it
    what was found (where it first fails, the likely mistake, the command that explains it),
    then the case's diagnosis; :data:`WIDTH` columns. ``quiet``: only the cases that fail
    ("" when none fails). What the columns mean is :data:`TABLE_LEGEND` (``run --help``)."""
    if quiet:
        results = [r for r in results if not r.ok]
        if not results:
            return ""
    w = max([14, *(len(r.case) for r in results)])    # the case column fits every name
    head = (f"{'case':<{w}} {'framework':<9} {'local':>8} {'loss':>8} {'grads':>8} {'params':>8} "
            f"{'envelope':>8}  verdict")
    lines = [head, "-" * min(len(head) + 20, WIDTH)]
    for r in results:
        for fw, c in r.comparisons.items():
            n = row(r, fw)
            short, details = _headline(r, fw)
            lines.append(f"{r.case:<{w}} {fw:<9} {n['local']:>8} {n['loss']:>8} {n['grads']:>8} "
                         f"{n['params']:>8} {n['envelope']:>8}  {short}")
            lines += details
            if c.first is not None and c.first.explanation:
                lines += _wrap("likely:", c.first.likely)
            if not r.agree(fw) and (command := next_command(r, fw)):
                lines += _wrap("next:", command)
            if fw in r.drift:
                dr = r.drift[fw]
                above = dr["first_step_above_1e-3"]
                when = f"above 1e-3 from step {above}" if above is not None else "never above 1e-3"
                lines += _wrap(f"{r.trajs[fw].dtype} drift:",
                               f"max rel. err {dr['max_rel_err']:.2e}, {when}; behaviour "
                               + ("survives (same dynamics, cycle, dead units)" if r.same_behaviour(fw)
                                  else "CHANGES"))
        for fw, why in r.cannot.items():
            dashes = " ".join(f"{'-':>8}" for _ in range(5))
            lines.append(f"{r.case:<{w}} {fw:<9} {dashes}  CANNOT EXPRESS")
            lines += _wrap("why:", f"{why} (not run: neither agree nor a mistake of the model)")
        lines += _wrap("->", r.diagnosis)
        for note in r.declared.notes:
            lines += _wrap("note:", note)
        if r.transcript is not None:
            t = r.transcript
            note = (f"transcript: matches the document's {t['lines']} printed lines"
                    + (f" ({t['rounding_only']} differ by BLAS rounding only)" if t["rounding_only"] else "")
                    if t["status"] == "match" else
                    f"transcript: MISMATCH with the document: {t['differences'][0]}")
            lines += _wrap("->", note)
    return "\n".join(lines)
