"""``crosscheck diff OLD.json NEW.json``: what changed between two reports of ``crosscheck run
--json``, the nightly job's view.

For each case x framework in both reports: the verdict, every error group's growth (the
trajectories' loss, grads, params and predictions; the local question's loss and each
parameter), the predictability horizon and the dynamics (kind and period); for each case: the
transcript's status, the reference's dynamics and its dead units; then the kink table and the
versions. A change *fails* the nightly when a verdict or a transcript's status flips, a kink
convention changes, an error grows past the budget (:func:`tolerances.past_budget`), or a case
or framework of OLD is missing from NEW; everything else is said, and passes (a case or
framework new in NEW among it).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from crosscheck import tolerances


class ReportError(Exception):
    """A file that is not a readable ``crosscheck run --json`` report (one line: exit 2)."""


# --------------------------------------------------------------------------- reading a report
_NUMBER = "number"   # a float or int, or a non-finite one written as a string ("nan", "inf")

#: The part of the JSON contract (docs/reference/json.md) that diff reads: key -> type, or a nested layout.
_DYNAMICS = {"kind": str, "period": (int, None)}
_LAYOUT = {
    "versions": dict, "dtype": str,
    "cases": {"*": {
        "steps": int, "hyper": dict, "dynamics": _DYNAMICS, "transcript": (dict, None),
        "dead_units": [{"name": str, "samples": list, "from_step": {"*": int}, "always": bool}],
        "frameworks": {"*": {
            "agree": bool, "failed": (str, None), "horizon": (int, None), "dynamics": _DYNAMICS,
            "max_rel_err": {"*": _NUMBER}, "tolerance": _NUMBER,
            "local": {"max_rel_err": {"*": _NUMBER}, "tolerance": _NUMBER},
        }},
    }},
}
_KINK_ROW = {"framework": str, "spelling": str, "at_zero": _NUMBER, "agrees": bool}


_NAMES = {dict: "an object", list: "a list", str: "a string", bool: "a bool", int: "an integer",
          float: "a number", None: "null", _NUMBER: "a number"}


def _type_name(v: Any) -> str:
    return "null" if v is None else _NAMES.get(type(v), type(v).__name__)


def _is(v: Any, want: Any) -> bool:
    if want is None:
        return v is None
    if want == _NUMBER:
        if isinstance(v, str):
            try:
                float(v)
            except ValueError:
                return False
            return True
        return isinstance(v, (int, float)) and not isinstance(v, bool)
    if want is int:
        return isinstance(v, int) and not isinstance(v, bool)
    return isinstance(v, want)


def _check(v: Any, layout: Any, where: str) -> str | None:
    """What in ``v`` does not fit ``layout`` (a type, a tuple of choices, a dict of keys, with
    "*" for every key, or a one-element list for every item), as one phrase; None if it fits."""
    if isinstance(layout, dict):
        if not isinstance(v, dict):
            return f"{where} is {_type_name(v)}, not an object"
        for key, sub in layout.items():
            items = v.items() if key == "*" else [(key, v.get(key, ...))]
            for k, item in items:
                if item is ...:
                    return f"{where}.{k} is missing"
                problem = _check(item, sub, f"{where}.{k}")
                if problem:
                    return problem
        return None
    if isinstance(layout, list):
        if not isinstance(v, list):
            return f"{where} is {_type_name(v)}, not a list"
        for i, item in enumerate(v):
            problem = _check(item, layout[0], f"{where}[{i}]")
            if problem:
                return problem
        return None
    choices = layout if isinstance(layout, tuple) else (layout,)
    if not any(_is(v, c) for c in choices):
        return f"{where} is {_type_name(v)}, not {' or '.join(_NAMES[c] for c in choices)}"
    return None


def load(path: str) -> dict[str, Any]:
    """The report in ``path``; :class:`ReportError` naming the file and what is wrong."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ReportError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ReportError(f"{path}: is a directory, not a report") from None
    except UnicodeDecodeError:
        raise ReportError(f"{path}: not JSON (not UTF-8 text)") from None
    except OSError as e:
        raise ReportError(f"{path}: cannot read it: {e.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ReportError(f"{path}: not JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
    if not isinstance(data, dict) or not {"versions", "dtype", "cases"} <= set(data):
        raise ReportError(f"{path}: not a crosscheck report (a JSON object with versions, dtype and cases, "
                          "as crosscheck run --json writes it)")
    problem = _check(data, _LAYOUT, "report")
    if problem is None and data.get("kinks") is not None:   # older reports have no kink table
        problem = _check(data["kinks"], [_KINK_ROW], "report.kinks")
    if problem:
        raise ReportError(f"{path}: unknown report layout: {problem}")
    return data


def _float(v: Any) -> float:
    return float(v)   # also "nan", "inf" (the JSON's non-finite floats)


# --------------------------------------------------------------------------- what changed
@dataclasses.dataclass(frozen=True)
class Change:
    """One difference between the two reports."""

    kind: str                  # verdict, transcript, error, horizon, dynamics, dead_units, kinks,
    #                            versions, hyper, only_in
    case: str | None
    framework: str | None
    what: str                  # "verdict", "grads error", "local W1 error", "jax", ...
    old: Any                   # as shown: a string or a number (None where absent)
    new: Any
    fails: bool
    note: str = ""

    @property
    def where(self) -> str:
        if self.case is None:
            return "kink table" if self.kind == "kinks" else self.kind
        return f"{self.case}/{self.framework}" if self.framework else self.case

    def __str__(self) -> str:
        mark = "FAIL  " if self.fails else "      "
        if self.kind == "only_in":
            return f"{mark}{self.where}: {self.note}"
        if self.kind == "versions":
            return f"{mark}versions: {self.what} {_show(self.old)} -> {_show(self.new)}"
        note = f" ({self.note})" if self.note else ""
        return f"{mark}{self.where}: {self.what}: {_show(self.old)} -> {_show(self.new)}{note}"

    def as_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["old"], d["new"] = _json_value(self.old), _json_value(self.new)
        return d


def _show(v: Any) -> str:
    if v is None:
        return "none"
    if isinstance(v, float):
        return "0" if v == 0 else f"{v:.3g}"
    return str(v)


def _json_value(v: Any) -> Any:
    return str(v) if isinstance(v, float) and not math.isfinite(v) else v


_QUESTION = {"local": "manual backward", "update": "manual update", "global": "trajectories",
             None: "behaviour"}


def verdict(case: dict[str, Any], fw: dict[str, Any]) -> str:
    """The verdict as ``crosscheck run`` names it: agree, DIVERGING alike, or MISMATCH (question)."""
    if fw["agree"]:
        return "DIVERGING alike" if case["dynamics"]["kind"] == "diverging" else "agree"
    return f"MISMATCH ({_QUESTION.get(fw['failed'], fw['failed'])})"


def _dynamics(d: dict[str, Any]) -> str:
    return d["kind"] + (f", period {d['period']}" if d["period"] else "")


def _dead(units: list[dict[str, Any]]) -> str:
    def one(u: dict[str, Any]) -> str:
        if u["always"]:
            return f"{u['name']} off on every sample at every step"
        first = min(u["from_step"].values(), default=None)
        since = f" from step {first}" if first is not None else ""
        return f"{u['name']} off on sample(s) {u['samples']}{since}"
    return "; ".join(one(u) for u in units) or "none"


def _horizon(h: int | None) -> str:
    return "none" if h is None else f"step {h}"


def _errors(fw: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """Every error group -> (error, its tolerance)."""
    loc = fw["local"]
    tol, local_tol = _float(fw["tolerance"]), _float(loc["tolerance"])
    return {**{f"{k} error": (_float(v), tol) for k, v in fw["max_rel_err"].items()},
            **{f"local {k} error": (_float(v), local_tol) for k, v in loc["max_rel_err"].items()}}


def _error_change(case: str, name: str, what: str, old: float, new: float, tol: float) -> Change | None:
    if not tolerances.grew(old, new):
        return None
    fails = tolerances.past_budget(old, new, tol)
    factor = "from exactly 0" if old == 0 else f"x{new / old:.3g}"
    judged = math.isfinite(new) and math.isfinite(tol) and tol > 0
    share = f"{new / tol:.0%} of its tolerance {tol:.2g}" if judged else f"tolerance {_show(tol)}"
    budget = (f"past the budget (x{tolerances.DIFF_GROWTH:g} and {tolerances.DIFF_SHARE:.0%})" if fails
              else "within the budget")
    return Change("error", case, name, what, old, new, fails, f"{factor}, {share}: {budget}")


def _pair(case: str, name: str, old_case: dict, new_case: dict) -> list[Change]:
    """The changes of one case x framework present in both reports."""
    a, b = old_case["frameworks"][name], new_case["frameworks"][name]
    out = []
    va, vb = verdict(old_case, a), verdict(new_case, b)
    if va != vb:
        out.append(Change("verdict", case, name, "verdict", va, vb, True))
    old_errors, new_errors = _errors(a), _errors(b)
    for what in (w for w in old_errors if w in new_errors):
        change = _error_change(case, name, what, old_errors[what][0], *new_errors[what])
        if change:
            out.append(change)
    if a["horizon"] != b["horizon"]:
        out.append(Change("horizon", case, name, "horizon", _horizon(a["horizon"]), _horizon(b["horizon"]),
                          False))
    if _dynamics(a["dynamics"]) != _dynamics(b["dynamics"]):
        out.append(Change("dynamics", case, name, "dynamics", _dynamics(a["dynamics"]),
                          _dynamics(b["dynamics"]), False))
    return out


def _case(case: str, a: dict, b: dict, names: tuple[str, str]) -> list[Change]:
    """The changes of one case present in both reports, its frameworks' included."""
    out = []
    if (a["hyper"], a["steps"]) != (b["hyper"], b["steps"]):
        out.append(Change("hyper", case, None, "hyper-parameters", json.dumps(a["hyper"]),
                          json.dumps(b["hyper"]), False, "different runs: compared all the same"))
    ta, tb = ((t or {}).get("status", "not checked") for t in (a["transcript"], b["transcript"]))
    if ta != tb:
        flips = {ta, tb} == {"match", "MISMATCH"}
        out.append(Change("transcript", case, None, "transcript", ta, tb, flips))
    if _dynamics(a["dynamics"]) != _dynamics(b["dynamics"]):
        out.append(Change("dynamics", case, None, "reference's dynamics", _dynamics(a["dynamics"]),
                          _dynamics(b["dynamics"]), False))
    if _dead(a["dead_units"]) != _dead(b["dead_units"]):
        out.append(Change("dead_units", case, None, "reference's dead units", _dead(a["dead_units"]),
                          _dead(b["dead_units"]), False))
    for name in _union(a["frameworks"], b["frameworks"]):
        if name in a["frameworks"] and name in b["frameworks"]:
            out += _pair(case, name, a, b)
        else:
            out.append(_only(case, name, names, name in a["frameworks"]))
    return out


def _union(a: dict, b: dict) -> list[str]:
    return list(dict.fromkeys([*a, *b]))


def _only(case: str, framework: str | None, names: tuple[str, str], in_old: bool) -> Change:
    """A case or framework in one report only. One that OLD checked and NEW lost fails, as a
    verdict that flips does: a nightly that stopped checking it must not pass silently. One
    new in NEW is a note."""
    if in_old:
        return Change("only_in", case, framework, "present", True, False, True,
                      f"only in OLD ({names[0]}): NEW no longer checks it")
    return Change("only_in", case, framework, "present", False, True, False, f"only in NEW ({names[1]})")


def _kink_text(row: dict[str, Any]) -> str:
    same = "same as" if row["agrees"] else "NOT"
    text = f"d/dx at 0 = {_show(_float(row['at_zero']))}, {same} the reference's"
    if row.get("kink_case_agrees") is not None:
        text += f", kink case {'agrees' if row['kink_case_agrees'] else 'DIFFERS'}"
    return text


def _kinks(old: list | None, new: list | None) -> tuple[str, list[Change]]:
    """How the kink tables compare (a phrase), and their changes."""
    if old is None or new is None:
        where = ("in neither report" if old is None and new is None else
                 f"not in {'OLD' if old is None else 'NEW'}")
        return f"{where} (crosscheck run --html records it)", []
    a = {(r["framework"], r["spelling"]): r for r in old}
    b = {(r["framework"], r["spelling"]): r for r in new}
    out = []
    for key in _union(a, b):
        what = f"{key[0]} {key[1]}"
        if key in a and key in b:
            if _kink_text(a[key]) != _kink_text(b[key]):
                out.append(Change("kinks", None, None, what, _kink_text(a[key]), _kink_text(b[key]), True,
                                  "a kink convention changed"))
        else:
            row = a.get(key) or b[key]
            out.append(Change("kinks", None, None, what, _kink_text(row) if key in a else None,
                              _kink_text(row) if key in b else None, False,
                              "a spelling in one table only"))
    return "compared", out


@dataclasses.dataclass
class Diff:
    """Two reports compared: the changes, and what was compared."""

    old: str
    new: str
    dtype: str
    cases: int                 # cases in both reports
    pairs: int                 # case x framework pairs in both
    kinks: str                 # "compared", or why not
    changes: list[Change]

    @property
    def fails(self) -> bool:
        return any(c.fails for c in self.changes)

    def text(self) -> str:
        failing = sum(c.fails for c in self.changes)
        lines = [f"OLD {self.old} -> NEW {self.new}: {self.cases} case{'s' * (self.cases != 1)}, "
                 f"{self.pairs} case x framework pair{'s' * (self.pairs != 1)} in both ({self.dtype}); "
                 f"kink table: {self.kinks}"]
        lines += [str(c) for c in sorted(self.changes, key=lambda c: not c.fails)]
        if not self.changes:
            same = "verdicts, transcripts, horizons, dynamics, dead units" + (
                ", kink table" if self.kinks == "compared" else "")
            lines.append(f"no change: the same {same} and versions; no error grew more than "
                         f"x{tolerances.DIFF_GROWTH:g}")
        else:
            lines.append(f"{failing} change{'s' * (failing != 1)} fail the nightly (a verdict or transcript "
                         "that flips, a kink convention, an error past its budget, a case or framework "
                         f"NEW lost), {len(self.changes) - failing} more said")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {"old": self.old, "new": self.new, "dtype": self.dtype, "cases": self.cases,
                "pairs": self.pairs, "kinks": self.kinks, "fails": self.fails,
                "budget": {"growth": tolerances.DIFF_GROWTH, "share": tolerances.DIFF_SHARE},
                "changes": [c.as_dict() for c in self.changes]}


def compare(old: dict[str, Any], new: dict[str, Any], names: tuple[str, str] = ("OLD", "NEW")) -> Diff:
    """What changed from report ``old`` to report ``new`` (both as :func:`load` returns them;
    ``names``: how to call them, their paths). :class:`ReportError` if their dtypes differ:
    errors of a float32 run and a float64 run do not compare."""
    if old["dtype"] != new["dtype"]:
        raise ReportError(f"{names[0]} is a {old['dtype']} report and {names[1]} a {new['dtype']} one: "
                          "diff compares reports of one dtype")
    changes = []
    for k in _union(old["versions"], new["versions"]):
        a, b = old["versions"].get(k), new["versions"].get(k)
        if a != b:
            changes.append(Change("versions", None, None, k, a, b, False))
    both = pairs = 0
    for case in _union(old["cases"], new["cases"]):
        if case in old["cases"] and case in new["cases"]:
            a, b = old["cases"][case], new["cases"][case]
            both += 1
            pairs += len(a["frameworks"].keys() & b["frameworks"].keys())
            changes += _case(case, a, b, names)
        else:
            changes.append(_only(case, None, names, case in old["cases"]))
    kinks, kink_changes = _kinks(old.get("kinks"), new.get("kinks"))
    return Diff(names[0], names[1], new["dtype"], both, pairs, kinks, changes + kink_changes)


def diff_files(old: str, new: str) -> Diff:
    """:func:`compare` of the reports in two files."""
    return compare(load(old), load(new), (old, new))
