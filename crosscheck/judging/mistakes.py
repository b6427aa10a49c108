"""Why is a manual gradient wrong? The worst elements, and the likely kind of mistake.

Where the local question fails (the manual gradient against autograd at the same
parameters), :func:`explain` compares the two arrays element by element and names the
fingerprint a mistake leaves:

* ``dtype``: every manual value is a float32 (or float16) number, autograd's are not, and
  they differ by that dtype's rounding only: the backward computes in the narrower dtype;
* ``constant_factor``: manual = k * autograd on every element, k != 1 (named when it is 2,
  1/2, the batch size, the number of outputs, or their inverses; every reading that fits,
  the most specific first);
* ``sign``: manual = -autograd;
* ``transpose``: the right values in the transposed layout;
* ``penalty``: manual - autograd = c * p for the parameter p itself (an L2 term missing,
  halved, of the wrong sign, or one the loss does not have), or c times a declared penalty's
  gradient;
* ``clip``: the manual value sits exactly at +-c on every element where it differs, where
  autograd's exceeds c (a gradient clip in the backward: np.clip(d, -c, c));
* ``dead_units``: wrong only in the units (last axis) that are off on some sample, in one
  layer of several (each recorded ReLU pre-activation with that many units is tried);
* ``stale_parameters``: the manual value is autograd's of the step before (parameters used
  before their update, or a cached value);
* ``some_elements``: right except at a few listed elements (a missing term);
* ``shape``: shapes differ;
* ``non_finite``: NaN or inf where the other side is a number (listed);
* ``unknown``: none of these.

More kinds are read from the whole step rather than one array, by re-evaluating it
(:mod:`crosscheck.judging.probes`): ``kink`` (a pre-activation exactly 0, where the forward's
and the backward's conventions differ: the difference vanishes a little away, declared or
not; named only where the kink accounts for the difference), ``transpose`` of a square matrix
inside a chain (a recurrence), ``activation_derivative``, and ``dead_units`` where every unit
is off on some sample. Where several gradients
are wrong at a step, each is read, and :func:`clearest` picks the most telling reading
(:data:`TELLING`): a clean factor or sign on one beats a pattern mixed with the chain rule's
downstream terms on another.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from crosscheck import tolerances

#: Relative spread within which element ratios count as one constant factor, and within
#: which a value counts as equal to another: far above rounding (1e-15), far below any
#: real mistake's fingerprint.
SAME = 1e-7
#: Dtypes narrower than the run's float64 that a backward may compute in by accident
#: (np.float32 data or init, an astype), narrowest first.
NARROW = ("float16", "float32")
#: At most this share of elements wrong, and at most MAX_LISTED of them, is "some elements".
SOME_SHARE = 0.5
MAX_LISTED = 6


#: The kinds, most telling first: a reading earlier here names the mistake more surely. A
#: defect of the array itself first; then a clean relation between the whole manual array and
#: autograd's (a sign, a named factor, a penalty's multiple, a clip); then patterns that hold
#: on part of it or that a probe of the whole step found; an unnamed factor, a few elements,
#: and nothing last. ``constant_factor`` without a reading of its factor ranks as "factor".
TELLING = ("non_finite", "shape", "dtype", "sign", "constant_factor", "penalty", "clip", "kink",
           "transpose", "activation_derivative", "dead_units", "stale_parameters", "factor",
           "some_elements", "unknown")


@dataclasses.dataclass(frozen=True)
class Explanation:
    kind: str
    text: str
    factor: float | None = None
    elements: tuple[tuple[int, ...], ...] = ()
    parameter: str | None = None     # the gradient it was read on (None: the whole step)
    named: bool = True               # a constant factor: whether the factor has a reading

    @property
    def rank(self) -> int:
        """Its place in :data:`TELLING` (lower is more telling)."""
        if self.kind == "clip" and len(self.elements) < 2:   # one element sits at any value: weak evidence
            return TELLING.index("some_elements")
        return TELLING.index("factor" if self.kind == "constant_factor" and not self.named else self.kind)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "parameter": self.parameter, "factor": self.factor,
                "named": self.named, "elements": [list(e) for e in self.elements], "text": self.text}


def clearest(readings: Sequence[Explanation]) -> Explanation:
    """The most telling of ``readings`` (one per wrong gradient, in declaration order): the
    lowest :attr:`Explanation.rank`, the first declared among equals."""
    return min(readings, key=lambda e: e.rank)


def own_penalty(name: str, manual: np.ndarray, autograd: np.ndarray, value: np.ndarray, tol: float,
                declared: np.ndarray | None = None, symbol: str = "p") -> Explanation | None:
    """Where manual - autograd = c * p for the parameter ``value`` p itself on every element
    (an L2 term's fingerprint), with ``c`` named against ``declared``, the declared penalty's
    gradient, where that is a multiple of p too: missing (-1 times it), its factor 2 missing
    (-1/2), its sign flipped (-2), or a term the declared loss does not have; ``factor``: the
    penalty's term in the backward over the declared one's (c itself where none is declared
    for this parameter). None where the
    difference is not such a multiple, or p has fewer than two nonzero elements (one element
    is always a multiple of itself: no evidence)."""
    m, a, p = (np.ravel(np.asarray(v, np.float64)) for v in (manual, autograd, value))
    if p.shape != m.shape or np.count_nonzero(p) < 2:
        return None
    diff = m - a
    scale = float(np.max(np.abs(a), initial=0.0)) or 1.0
    c = float(diff @ p / (p @ p))
    same = tolerances.PENALTY_SAME_FACTOR
    if c == 0 or np.max(np.abs(diff - c * p)) > max(tol * scale, same * np.max(np.abs(diff))):
        return None
    what = f"{name} - autograd's is exactly {c:.4g} x {symbol} on every element"
    if declared is not None and np.count_nonzero(declared) >= 2:
        g = np.ravel(np.asarray(declared, np.float64))
        r = float(g @ p / (p @ p))
        if r and np.max(np.abs(g - r * p)) <= same * np.max(np.abs(g)):   # the declared penalty is L2 here
            for times, says in ((-1.0, "the penalty's gradient is missing from it"),
                                (-0.5, "the penalty's term is half what it should be (a missing factor 2: "
                                       "lam * p for 2 * lam * p?)"),
                                (-2.0, "the penalty's term has the wrong sign (- 2 * lam * p for "
                                       "+ 2 * lam * p)?"),
                                (1.0, "the penalty's term is there twice")):
                if abs(c - times * r) <= same * abs(r):
                    return Explanation("penalty", f"{what}, {c / r:+.4g} times the declared penalty's "
                                                  f"gradient: {says}", factor=1 + c / r)
            return Explanation("penalty", f"{what}: the penalty's term is {1 + c / r:.4g} times the declared "
                                          "penalty's gradient", factor=1 + c / r)
    return Explanation("penalty", f"{what}: a penalty term the declared loss does not have (is the penalty "
                                  f"declared with penalty=, and does it cover this parameter? its sign?)",
                       factor=c)


def clipped(name: str, manual: np.ndarray, autograd: np.ndarray, wrong: np.ndarray) -> Explanation | None:
    """Where the manual value sits exactly at +-c on every ``wrong`` element, autograd's
    exceeds c in size there, and nowhere else (a clip at c in the backward). On one element
    alone this is weak evidence (any value sits at itself): it is read only where c is a bound
    someone chooses (one significant digit: 5, 0.1, 10), and ranks as a few elements
    (:attr:`Explanation.rank`)."""
    m, a = np.asarray(manual, np.float64), np.asarray(autograd, np.float64)
    at = np.abs(m[wrong])
    if not at.size:
        return None
    c = float(np.max(at))
    right_side = np.sign(m[wrong]) == np.sign(a[wrong])
    if (c == 0 or np.any(np.abs(at - c) > SAME * c) or not right_side.all()
            or np.any(np.abs(a[wrong]) <= c) or np.any(np.abs(a[~wrong]) > c * (1 + SAME))):
        return None
    if at.size == 1 and c != float(f"{c:.1g}"):
        return None   # one element at a bound nobody would choose (4.37...): no evidence of a clip
    idx = tuple(tuple(int(i) for i in np.unravel_index(j, m.shape)) for j in np.flatnonzero(wrong.ravel()))
    where = ", ".join(map(str, idx[:MAX_LISTED])) + (", ..." if len(idx) > MAX_LISTED else "")
    top = float(np.max(np.abs(a[wrong])))
    return Explanation("clip", f"{name} sits exactly at +-{c:.6g} on the {len(idx)} elements where it "
                               f"differs ({where}), where autograd's exceeds {c:.6g} (up to {top:.4g}): the "
                               f"backward clips its gradient (np.clip(d, -{c:.6g}, {c:.6g}))? Autograd does "
                               "not clip: a clip that is meant belongs in the update (update=), where it is "
                               "checked as the optimizer", factor=c, elements=idx[:MAX_LISTED])


def penalty_factor(name: str, manual: np.ndarray, autograd: np.ndarray, penalty: np.ndarray,
                   tol: float) -> Explanation | None:
    """Where the manual gradient is off by ``c`` times the penalty's own gradient on every
    element (and right where the penalty's is 0): the penalty's term in the backward is
    ``1 + c`` times what it should be (an L2 term missing its factor 2 gives 0.5). None where
    the difference is not such a multiple."""
    m, a, g = (np.ravel(np.asarray(v, np.float64)) for v in (manual, autograd, penalty))
    if np.count_nonzero(g) < 2:   # one element is always a multiple of another: no evidence
        return None
    diff = m - a
    scale = float(np.max(np.abs(a), initial=0.0)) or 1.0
    on = np.abs(g) > 0
    if not on.any() or np.max(np.abs(diff[~on]), initial=0.0) > tol * scale:
        return None
    c = float(np.median(diff[on] / g[on]))
    same = tolerances.PENALTY_SAME_FACTOR
    if c == 0 or np.max(np.abs(diff - c * g)) > max(tol * scale, same * np.max(np.abs(diff))):
        return None
    if abs(1 + c) <= same:
        return Explanation("penalty", f"{name}: the penalty's gradient is missing from it (manual - "
                                      "autograd is minus the declared penalty's gradient on every element)",
                           factor=0.0)
    if abs(1 - c) <= same:
        return Explanation("penalty", f"{name}: the penalty's term is there twice (manual - autograd is the "
                                      "declared penalty's gradient on every element)", factor=2.0)
    return Explanation("penalty", f"{name}: the penalty's term in the backward is {1 + c:.4g} times the "
                       "penalty's gradient on every element", factor=1 + c)


def worst_elements(manual: np.ndarray, autograd: Mapping[str, np.ndarray], n: int = 5) -> list[dict]:
    """The ``n`` elements where the manual value is furthest from the first autograd's:
    index, manual, each framework's value, absolute and relative error."""
    m = np.asarray(manual, np.float64)
    first = np.asarray(next(iter(autograd.values())), np.float64)
    if m.shape != first.shape:
        return []
    diff = np.abs(m - first)
    order = np.argsort(-diff.ravel(), kind="stable")[:n]
    rows = []
    for flat in order:
        idx = np.unravel_index(flat, m.shape) if m.ndim else ()
        a = float(first[idx])
        rows.append({"index": [int(i) for i in idx], "manual": float(m[idx]),
                     **{fw: float(np.asarray(v, np.float64)[idx]) for fw, v in autograd.items()},
                     "abs_err": float(diff[idx]),
                     "rel_err": float(diff[idx] / abs(a)) if a else None})   # None: autograd is 0
    return rows


def triple(manual: np.ndarray, autograd: np.ndarray, tol: float) -> dict[str, Any]:
    """Backprop Ninja's view: bit-exact, within tolerance (normwise), the largest difference."""
    m, a = np.asarray(manual, np.float64), np.asarray(autograd, np.float64)
    if m.shape != a.shape:
        return {"exact": False, "approximate": False, "maxdiff": float("inf")}
    maxdiff = float(np.max(np.abs(m - a), initial=0.0))
    scale = float(np.max(np.abs(a), initial=0.0)) or 1.0
    return {"exact": bool(np.array_equal(m, a)), "approximate": maxdiff <= tol * scale, "maxdiff": maxdiff}


def sizes(traj, step: int, prediction: Any = None) -> tuple[int, int]:
    """(batch size, number of outputs) of ``traj``'s step: the factors a mistake is named by.
    A per-sample step's batch is its one sample; a real loop's, the samples its feed gave it,
    and its outputs per sample are read from ``prediction``, the forward's at that step (a
    real loop records no predictions), whichever axis holds the samples."""
    from crosscheck.judging.metrics import sample_of

    pred = np.asarray(traj.pred_train)
    if traj.feed is not None:   # a real loop: the step's own batch
        batch = len(traj.feed.index(step))
        if prediction is None:
            return batch, 1
        out = np.asarray(prediction)
        return batch, max(1, out.size // batch) if out.ndim >= 2 else 1
    batch = 1 if sample_of(traj, step) is not None or pred.ndim == 0 else len(pred)
    return batch, pred.shape[-1] if pred.ndim >= 2 else 1


def _named_factor(k: float, m: int, outputs: int, same: float = SAME) -> str:
    """What a factor ``k`` may be, every reading that fits, the most specific first: a batch
    of 2 or two outputs make 2 the batch size or the number of outputs, and a doubled 2."""
    names = []
    if m > 1:
        names += [(float(m), "the batch size: is a 1/m missing?"),
                  (1.0 / m, "one over the batch size: divided by m twice?")]
    if outputs > 1:
        names += [(float(outputs), "the number of outputs: does the derivative divide by m where the "
                                   "loss divides by m * outputs?"),
                  (1.0 / outputs, "one over the number of outputs")]
    names += [(2.0, "a doubled factor 2"), (0.5, "a factor 2 too few (or a 1/2 too many)")]
    fits = [name for value, name in names if abs(k - value) <= same * abs(value)]
    text = fits[0] if fits else ""
    for name in fits[1:]:
        text += (" Or " if text.endswith("?") else ", or ") + name
    return text


def _narrow_dtype(m: np.ndarray, a: np.ndarray, scale: float) -> tuple[str, float] | None:
    """The narrower dtype (float16, float32) whose numbers every manual value is, where some of
    autograd's are not and the two differ by that dtype's rounding only (its one-step bound,
    :func:`tolerances.local_rtol`): the backward computed in it. With the normwise difference."""
    rel = float(np.max(np.abs(m - a), initial=0.0)) / scale
    for dtype in NARROW:   # narrowest first: a float16 number is a float32 number too
        with np.errstate(over="ignore"):
            held = np.array_equal(m.astype(dtype), m) and not np.array_equal(a.astype(dtype), a)
        if held and rel <= tolerances.local_rtol(dtype):
            return dtype, rel
    return None


def explain(name: str, manual: np.ndarray, autograd: np.ndarray, *, tol: float, batch: int = 1,
            outputs: int = 1, previous: np.ndarray | None = None,
            units: Mapping[str, np.ndarray] | None = None, value: np.ndarray | None = None,
            penalty: np.ndarray | None = None, parameter: str | None = None) -> Explanation:
    """The likely mistake behind ``manual`` (the hand-written gradient ``name``) differing
    from ``autograd`` at the same parameters.

    ``previous``: autograd's value one step earlier (stale parameters); ``units``: per declared
    ReLU pre-activation, per unit (last axis), whether it is off on some sample at this step;
    ``value``: the parameter
    itself and ``penalty`` its declared penalty's gradient (a penalty's fingerprint);
    ``parameter``: the parameter's name, recorded on the reading.
    """
    why = _explain(name, manual, autograd, tol=tol, batch=batch, outputs=outputs, previous=previous,
                   units=units or {}, value=value, penalty=penalty, symbol=parameter or "p")
    return dataclasses.replace(why, parameter=parameter)


def _explain(name: str, manual: np.ndarray, autograd: np.ndarray, *, tol: float, batch: int, outputs: int,
             previous: np.ndarray | None, units: Mapping[str, np.ndarray],
             value: np.ndarray | None, penalty: np.ndarray | None, symbol: str) -> Explanation:
    m, a = np.asarray(manual, np.float64), np.asarray(autograd, np.float64)
    if m.shape != a.shape:
        return Explanation("shape", f"{name} has shape {m.shape}, autograd's {a.shape}")
    if not (np.all(np.isfinite(m)) and np.all(np.isfinite(a))):
        side, values = ("the manual value", m) if not np.all(np.isfinite(m)) else ("autograd's value", a)
        bad = [tuple(int(i) for i in np.unravel_index(j, values.shape))
               for j in np.flatnonzero(~np.isfinite(values.ravel()))]
        what = "NaN" if np.all(np.isnan(values.ravel()[~np.isfinite(values.ravel())])) else "NaN or inf"
        where = ", ".join(map(str, bad[:MAX_LISTED])) + (", ..." if len(bad) > MAX_LISTED else "")
        hint = (": a 0 / 0, 0 * inf or inf - inf in the backward?" if side == "the manual value"
                and np.all(np.isfinite(a)) else "")
        return Explanation("non_finite", f"{name}: {side} is {what} at {where}{hint}",
                           elements=tuple(bad[:MAX_LISTED]))
    scale = float(np.max(np.abs(a), initial=0.0)) or 1.0
    wrong = np.abs(m - a) > tol * scale
    if not wrong.any():
        return Explanation("unknown", f"{name} agrees with autograd elementwise")
    narrow = _narrow_dtype(m, a, scale)
    if narrow:
        dtype, rel = narrow
        return Explanation("dtype", f"{name} holds {dtype} values (every element is a {dtype} number) and "
                                    f"differs from autograd by {dtype} rounding only (rel. {rel:.1g}): "
                                    f"does the backward compute in {dtype} (np.{dtype} data or init, "
                                    "astype)?")
    same = max(SAME, 10 * tol)   # a float32 run's ratios spread by its own rounding

    def equal(x, y):
        return np.all(np.abs(x - y) <= same * np.maximum(np.abs(y), scale * tol))

    nonzero = np.abs(a) > tol * scale
    factor = None
    ratio = m[nonzero] / a[nonzero] if nonzero.any() else np.zeros(0)
    k = float(np.median(ratio)) if ratio.size else 0.0
    # Where autograd is negligible, a factor k leaves the manual value negligible too. A factor
    # of 1 is no factor: the values differ, by too little to be told from 1 (rounding).
    if ratio.size and k != 0 and abs(k - 1) > same and np.all(
            np.abs(m[~nonzero]) <= max(1.0, abs(k)) * tol * scale):
        if np.all(np.abs(ratio - k) <= same * abs(k)):
            if abs(k + 1) <= same:
                return Explanation("sign", f"{name} is exactly -1 x autograd's on every element: a sign "
                                           "is flipped (O - y against y - O?)", -1.0)
            named = _named_factor(k, batch, outputs, same)
            if named:
                return Explanation("constant_factor", f"{name} is exactly {k:.6g}x autograd's on every "
                                                      f"element: {k:.6g} is {named}", k)
            if nonzero.sum() > 1:   # one element is always "a constant factor": no evidence
                factor = k
    if m.ndim == 2 and m.shape[0] == m.shape[1] and equal(m.T, a):
        return Explanation("transpose", f"{name} holds autograd's values transposed (a @ b.T where "
                                        "b.T @ a was meant?)")
    if value is not None:
        declared = None if penalty is None else np.asarray(penalty, np.float64)
        found = own_penalty(name, m, a, value, tol, declared, symbol)
        if found is None and declared is not None and np.any(declared):
            found = penalty_factor(name, m, a, declared, tol)
        if found is not None:
            return found
    found = clipped(name, m, a, wrong)
    if found is not None:
        return found
    stale = previous is not None and np.shape(previous) == a.shape
    if stale and equal(m, np.asarray(previous, np.float64)):
        return Explanation("stale_parameters", f"{name} equals autograd's gradient of the step before: "
                                               "parameters used before their update, or a stale cache")
    if factor is not None:
        return Explanation("constant_factor", f"{name} is exactly {factor:.6g}x autograd's on every "
                                              "element", factor, named=False)
    for layer, off in units.items():
        # Wrong in exactly the units of one layer that are off on some sample, and there wholly.
        if m.ndim >= 1 and off.shape == m.shape[-1:] and not off.all():
            by_unit = wrong.reshape(-1, m.shape[-1])
            cols = by_unit.any(axis=0)
            if cols.any() and np.array_equal(cols, off) and by_unit[:, cols].all():
                listed = np.flatnonzero(cols).tolist()
                return Explanation("dead_units", f"{name} is wrong only in units {listed} of {layer}, which "
                                                 f"are off on some sample: is {layer}'s ReLU mask missing "
                                                 f"from the backward (dL_d{layer} = dL_dA, or no "
                                                 f"dZ[Z <= 0] = 0)?")
    idx = [tuple(int(i) for i in np.unravel_index(j, m.shape)) for j in np.flatnonzero(wrong.ravel())]
    if len(idx) <= MAX_LISTED and len(idx) <= SOME_SHARE * m.size:
        return Explanation("some_elements", f"{name} is right except at {', '.join(map(str, idx))}: "
                                            "a missing or extra term there?", elements=tuple(idx))
    return Explanation("unknown", f"{name} differs from autograd on {len(idx)} of {m.size} elements "
                                  "with no single pattern")
