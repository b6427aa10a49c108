"""Every tolerance of the project, with its derivation. Nothing else defines one.

Notation: ``u`` is the unit roundoff of the dtype (float64: 2**-53 = 1.11e-16,
half of ``np.finfo(float64).eps``). Every error below is *normwise relative with a
causal scale*: for one quantity of one parameter (say the gradient of ``W1``) at step k,

    err_k = max_elements |a_k - b_k| / max_{j <= k} max_elements |b_j|,

so a value that decays towards 0 is judged against the scale it had, not against
its own last digits (where a relative error means nothing), and a run that later
blows up cannot hide an earlier error behind its final size (the meta-test
``update-before-gradient`` caught exactly that with a whole-run scale). NaN in both
at the same place counts as agreement; NaN on one side only is an infinite error.

Why implementations differ at all: NumPy, torch and JAX compute the same
expressions, but autograd associates products and sums in its own order
(``mean`` then its derivative, against the document's ``2 * (O - y) / m``), and
each library picks its own summation kernel. One step of these programs is a chain of
at most ``OPS_PER_STEP`` dependent roundings (the longest: a 10-term product sum,
plus the loss derivative, the chain through two layers and the update), so one step
differs by at most ``OPS_PER_STEP * u`` relative. Across steps the difference is
carried by the update map; these runs converge or sit on an attracting cycle, so the
map does not amplify it on the whole and the differences add up at most linearly:

    rtol(S) = OPS_PER_STEP * u * S          (S = number of update steps)

For the longest run (3000 steps) that is 32 * 1.11e-16 * 3000 = 1.07e-11. The
expected agreement is about 1e-12; a bound beyond 1e-10 would need explaining.
The measured errors are in docs/reference/tolerances.md; they sit well inside these bounds.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

#: Unit roundoff of each supported dtype (float16: only to recognise a backward that
#: computes in it, crosscheck.judging.mistakes; no run is float16).
UNIT_ROUNDOFF = {"float64": float(np.finfo(np.float64).eps) / 2,
                 "float32": float(np.finfo(np.float32).eps) / 2,
                 "float16": float(np.finfo(np.float16).eps) / 2}

#: Longest chain of dependent roundings in one update step (see the module docstring):
#: a 10-term sum (10) + loss derivative (3) + two layers of chain rule (2 x 4)
#: + update (2), rounded up to a power of two for the order-of-ops slack.
OPS_PER_STEP = 32

#: Ceiling above which a float64 tolerance needs an explanation, not acceptance.
FLOAT64_CEILING = 1e-10

#: Agreement in masks and in dead units' gradients is exact: a mask is a comparison,
#: and a dead unit's gradient is a product with an exact 0.
EXACT = 0.0

#: Two BLAS kernels summing the same 10 terms in another order, carried through one
#: document run (at most 3000 steps), as in ``rtol``: used only to tell BLAS rounding
#: from a real mismatch in a transcript when the document's kernel is not available.
BLAS_REORDER_RTOL = OPS_PER_STEP * UNIT_ROUNDOFF["float64"] * 3000


def rtol(steps: int, dtype: str = "float64") -> float:
    """Normwise relative tolerance for a run of ``steps`` update steps without amplification:
    the linear bound above (the baselines use it; :func:`envelope` extends it)."""
    return OPS_PER_STEP * UNIT_ROUNDOFF[dtype] * max(int(steps), 1)


#: Conditioning c_k >= 1 of a step (used by :func:`envelope` and the local tolerance) is how
#: much it amplifies rounding beyond the plain chain of operations: for the documents' own
#: cases (ReLU and identity, whose derivatives are exact) it is 1. For the class model with
#: tanh or sigmoid, whose derivative formulas cancel as a unit saturates (error u absolute,
#: not relative), it is the running bound :func:`two_layer_gradient_bound` of that step,
#: relative to each gradient's causal scale, over OPS_PER_STEP * u
#: (``reference.relu_class.conditioning``). Found when ``--sizes 2,3,1 --activations
#: tanh,identity`` drifted to 1.5e-9 against a 1.1e-11 bound. (A first try, max 1 / f',
#: gave 3e14: it ignored that a saturated unit's terms shrink with its f'.)


# --------------------------------------------------------------------------- one step
#: Agreement of one step's gradients (manual against autograd, at the same parameters):
#: no accumulation over steps, so rtol(1) = OPS_PER_STEP * u = 3.6e-15, normwise per
#: tensor. Measured: at most 2e-16 on every named intermediate and parameter gradient.
STEP_RTOL = OPS_PER_STEP * UNIT_ROUNDOFF["float64"]


def local_rtol(dtype: str = "float64", sensitivity: float = 0.0) -> float:
    """Tolerance of the local question: the manual backward against autograd *at the same
    parameters*, normwise per tensor with the causal scale, loss included.

    Nothing accumulates across steps, so the plain bound is one step's chain of roundings,
    OPS_PER_STEP * u (3.6e-15 in float64; times the step's conditioning, applied by the
    caller). That bound assumes the result is not much more sensitive to rounding than its
    own size. Near a fit it is: the residual O - y cancels, and rounding of O of size
    u * |O| becomes a large *relative* error of a small gradient (or loss). Where the plain
    bound is exceeded, the caller therefore measures that ``sensitivity``: how far the
    manual values move, normwise, when every parameter moves by u relative (twice, with
    alternating signs). Each implementation's rounding acts like a perturbation of at most
    OPS_PER_STEP * u, so the two can differ by OPS_PER_STEP * (u + sensitivity).

    A wrong gradient line is wrong by far more: a relative error of 1e-13 at step 0 is 30
    times the plain bound, and the sensitivity at a document's step 0 is about u.
    """
    return OPS_PER_STEP * (UNIT_ROUNDOFF[dtype] + sensitivity)


def update_rtol(dtype: str, memory: float, step_ratio: float) -> float:
    """Tolerance of the update question: a hand-written optimizer's new parameters against the
    framework's optimizer's, both from the framework's own parameters and gradients at that
    step, normwise with the parameters' causal scale S.

    Both compute ``p - D`` by the same formula in another order of operations. The subtraction
    rounds by at most u |p - D| in each; D's own chain of roundings (OPS_PER_STEP * u of |D|)
    is carried forward by the optimizer's state: a moment averaged with decay beta keeps a
    step's rounding for about 1 / (1 - beta) steps (Adam's second moment with beta2 = 0.999:
    1000 steps; Adagrad's sum: every step so far), which is ``memory`` (at most the steps so
    far; 1 for plain SGD). Relative to S, D's error is weighted by ``step_ratio`` = max |D| / S.
    So the two may differ by OPS_PER_STEP * u * (1 + memory * step_ratio).

    A wrong update is wrong by far more: Adam without its bias correction moves 3.2 times too
    far at step 0 (a relative error of lr * 2.2 / S), a momentum applied before the gradient
    is added does not move at all there.
    """
    return OPS_PER_STEP * UNIT_ROUNDOFF[dtype] * (1.0 + memory * step_ratio)


#: More probes where a step still exceeds that bound, each measured at that step:
#:
#: * **Its own rounding.** A user's backward is run again at the same parameters in extended
#:   precision (NumPy's longdouble, 64-bit mantissa, where the platform has one). If that
#:   value of the *same code* agrees with autograd within the bound, the float64 difference
#:   is this code's rounding (``h * (1 - h)`` cancels as a sigmoid saturates), not a wrong
#:   line: a wrong formula is just as wrong in any precision. Found on a user's sigmoid MLP
#:   at lr 7: 4e-12 at step 87, where the extended-precision value agreed to 1e-16.
#: * **Both codes' rounding, where the manual code's is measured large.** The same run in
#:   extended precision also measures the float64 manual code's own rounding error at that
#:   step. Where a one-ulp rounding of an intermediate is amplified by a cancellation after
#:   it (a saturated tanh: h one ulp off makes ``1 - h**2`` off by 1e-5 relative), autograd's
#:   value carries the same kind of error from its own rounding, which neither it nor the
#:   other framework can show (both round h alike). That measured error is then the step's
#:   sensitivity: the bound is OPS_PER_STEP * (u + own), as for the nudges above. Found on a
#:   user's tanh MLP with momentum at lr 1: 7.9e-14 at step 8 on a saturated unit's column,
#:   against a bound of 1e-14; torch and JAX agreed with each other bitwise there. A wrong line
#:   is not covered: its error is not the code's rounding, which stays at u where it is right.
#: * **Autograd's own accuracy.** The other framework's autograd at the same parameters. If
#:   the two autograd implementations disagree with each other by more than the bound, the
#:   computation has left the range where either is accurate to rounding (saturated units
#:   underflow: a term 1/u**2 with u ~ 1e300 becomes 0; XLA flushes subnormals to zero where
#:   NumPy and torch keep them), and neither can judge the manual backward there: the local
#:   question is answered up to that step, the trajectories compared up to it, and the
#:   report says so. Found on a user's sigmoid network at lr 8: at step 175 the manual
#:   backward agreed with its extended-precision self to 1e-17, torch was off by 1.3e-13 and
#:   JAX by 1.3e-5. A manual mistake cannot open this door: it does not make the two
#:   frameworks disagree with each other.


#: A real loop's envelope moves each step's gradients by their own rounding error, measured
#: in extended precision where a step's work (parameters times samples in its batch) is at
#: most this, and estimated from float32 above it (see ``Model.gradient_rounding``): NumPy's
#: longdouble has no BLAS, so a 784-128-10 MLP's step in batches of 64 (6.5e6) took 50 ms in
#: it, 10 times its whole float64 step; the tanh MLP whose saturated unit needs the exact
#: measure (tests/models/tanh_mlp_optimizers.py) is 84.
PRECISE_SHADOW_WORK = 100_000


#: A wrong hand-written update's step is read as one factor of the optimizer's where the
#: ratio of the two is the same on every moving element within this, relative: eps (1e-8
#: beside a root of a moment of about 1e-4) moves the ratio by about 1e-4 relative, and the
#: factors told apart (3.162 for Adam's two bias corrections at step 0, 0.1 and 0.0316 for one)
#: differ by far more.
UPDATE_SAME_FACTOR = 1e-3

#: An array of a hand-written optimizer's state is named as torch.optim's buffer it equals
#: within this, relative to the buffer's largest magnitude: the two are the same sums of the
#: same gradients in another order, apart by the rule's memory times u (1e-13 for Adam's
#: second moment over 1000 steps), and a wrong state (|g| averaged for g**2) by O(1).
UPDATE_SAME_STATE = 1e-9

#: A manual gradient off by c times the declared penalty's own gradient: c is read where the
#: difference is that multiple within this, relative. The penalty's gradient is by central
#: differences (FD_STEP), exact to about 1e-10 relative for a polynomial term.
PENALTY_SAME_FACTOR = 1e-6

#: The local question's sensitivity (how far the manual values move when every parameter
#: moves by u) widens its tolerance only where that move is the gradient's own response. A
#: move of more than JUMP_CHECK ulps is far above an evaluation's own rounding (OPS_PER_STEP
#: ulps), so it is a linear response, and a nudge 16 times larger moves the values about 16
#: times as far (at least JUMP_GROWTH times, for the rounding mixed in); a jump across a kink
#: (a pre-activation exactly 0 that a maximum, a where or an abs meets, declared or not) moves
#: them as far at any nudge, and is no sensitivity: it is not counted.
JUMP_CHECK = 1e4
JUMP_GROWTH = 4.0
JUMP_NUDGE = 16.0

#: Where the two frameworks' autograds part at a step by d beyond its tolerance, neither can
#: judge the manual value there (a kink whose convention differs, an amplified rounding),
#: unless, on some quantity (the loss, a parameter's gradient), the manual value is apart from
#: the judged one by more than REFEREE_MARGIN times the autograds' own distance there (where
#: they agree exactly, any difference beyond the step's tolerance is a mistake):
#: rounding amplified by the step's conditioning moves all three evaluations alike, by about
#: d, and a kink's conventions differ by at most the jump both autograds straddle; a manual
#: value a thousand times further off is a mistake of its own.
REFEREE_MARGIN = 1e3

#: A probe of a wrong step (crosscheck.judging.probes) evaluates the manual backward and
#: autograd again under a hypothesis (moved parameters, one derivative left out) and names the
#: mistake where the two then agree. "Agree" is: apart by at most this share of how far apart
#: they were at the step, or by the step's own tolerance, whichever is larger. The hypothesis
#: must explain all but a millionth of the difference: a hypothesis that is not the mistake
#: leaves a difference of the order of the mistake itself (a factor, a term), while the one
#: that is leaves rounding, amplified at most by the derivative the probe divides out
#: (1/sigmoid' at |z| = 20 is 5e8: 5e8 * 1e-16 = 5e-8 of a difference of order 1, inside 1e-6).
#: A real mismatch smaller than the step's tolerance times 1e6 may go unnamed ("unknown"):
#: never named wrongly.
PROBE_SHARE = 1e-6

#: The kink probe moves every parameter by this much relative (signs alternating from a fixed
#: draw): far above rounding (a pre-activation exactly 0 moves off 0 by about 1e-6 of its
#: inputs' size, so both sides of the comparison take the same branch there), far below any
#: change of the gradient that matters (its smooth part moves by about 1e-6 relative, and the
#: comparison is of manual and autograd at the same moved point). In a float32 run it is still
#: 17 times float32's unit roundoff (6e-8): the moved pre-activation keeps its side in both
#: codes; PROBE_SHARE is relative to the difference being explained, or the step's own
#: float32 tolerance where that is larger, so it holds there as it is (the real catalogue's
#: mistakes are named the same in float32: tests/meta/test_real_mistakes.py).
KINK_NUDGE = 1e-6

#: At a kink the loss's one-sided slopes along a direction d differ by a finite amount
#: (sum over the kinks of |upstream gradient| * |d . dz/dp|), the same at every small step h;
#: at a smooth point they differ by h * d'Hd, shrinking with h. The probe takes one-sided
#: differences at h and h / 10 (h moving the parameters by KINK_NUDGE relative) and reads a
#: kink where the gap keeps its size within KINK_GAP_SPREAD (a smooth point's falls 10x) and
#: is at least KINK_GAP_SHARE of |(manual - autograd) . d|: two conventions c, c' in [0, 1] at
#: a kink differ in their directional derivative by |c - c'| * |g . dz| <= the gap, so the gap
#: is at least the difference (half of it, for the finite differences' own error). And each
#: convention's slope along d lies between the two one-sided slopes (within KINK_GAP_SPREAD of
#: the gap): a convention is a mix of the two sides.
KINK_GAP_SPREAD = 0.1
KINK_GAP_SHARE = 0.5
KINK_STEP_RATIO = 10.0


# --------------------------------------------------------------------------- whole runs
#: The envelope below is a linearisation: it holds while the differences stay small. Where
#: it passes 1% the trajectories can no longer be compared step by step, because rounding
#: alone moves them by that much: that step is the run's *predictability horizon*.
PREDICTABLE = 1e-2


#: Window (steps) over which the shadow's difference is maximised: a difference that
#: oscillates passes through 0 at some phase, and two runs need not share that phase. It is
#: the longest period the dynamics diagnosis looks for.
ENVELOPE_WINDOW = 64


def envelope(shadow: np.ndarray, dtype: str = "float64",
             conditioning: np.ndarray | None = None) -> np.ndarray:
    """Per step, how far a correct implementation's trajectory may be from the reference's.

    ``shadow[k]`` is the measured normwise difference, at step k, between the reference's
    run and the same run with every parameter moved by u after every step, each element
    pushed the way it already deviates (random signs where it does not yet):
    what rounding-level differences made at every step grow to under these dynamics. A
    second implementation makes differences of up to OPS_PER_STEP * u * c_j at step j (c_j
    the step's conditioning, 1 for the documents' cases). Two regimes bound what they add
    up to, and the envelope is their sum:

    * without amplification, they add up at most linearly: OPS_PER_STEP * u * sum c_j,
      which is ``rtol(k + 1)`` for the documents' cases;
    * where the dynamics amplify (an unstable learning rate, a chaotic run), the earliest
      differences dominate and grow along the same directions as the shadow's, so the
      difference is OPS_PER_STEP times the shadow's (maximised over ENVELOPE_WINDOW steps).

        envelope_k = OPS_PER_STEP * (u * sum_{j <= k} c_j + max_{k - W < j <= k} shadow_j)

    A single nudge of the initial values is not enough: a contracting phase can round the
    difference away to exactly 0, after which the shadow cannot show a later instability
    (found with ``relu --lr 0.015``, whose shadow rejoined the reference bitwise at step 150
    and whose implementations then parted at step 248). Nor are random signs at every step:
    they partly cancel, while a second implementation's rounding can keep one sign step after
    step (found on a user's chaotic map, w <- w - lr * d/dw mean((w**2 x - 2x)**2) at lr 0.16:
    JAX parted from the reference at step 19 by 3.8e-12 against a random-sign envelope of
    3.7e-12, though its gradients agreed to 3e-16 at every step). Pushing each element the way
    it already deviates makes the shadow's differences add up as such rounding can.
    """
    d = np.asarray(shadow, np.float64)
    c = np.ones(len(d)) if conditioning is None else np.asarray(conditioning, np.float64)
    u = UNIT_ROUNDOFF[dtype]
    padded = np.concatenate([np.zeros(ENVELOPE_WINDOW - 1), d])
    recent = sliding_window_view(padded, ENVELOPE_WINDOW).max(axis=1) if len(d) else d
    with np.errstate(over="ignore", invalid="ignore"):
        out = OPS_PER_STEP * (u * np.cumsum(c) + recent * (u / UNIT_ROUNDOFF["float64"]))
    return np.where(np.isnan(out), np.inf, out)


# --------------------------------------------------------------------------- finite differences
#: Central differences of the loss, f'(t) ~ (L(t + h) - L(t - h)) / 2h, have two errors:
#: truncation h^2 |L'''| / 6 and rounding 2 * delta / 2h, where delta bounds the error of one
#: evaluation of L. L is a mean of squared errors e = pred - y; pred carries rounding
#: k * u * |pred| (k = OPS_PER_STEP), which the subtraction turns into an *absolute* error of
#: e, so delta ~ k * u * (|L| + mean(2 |e| (|pred| + |y|))) <= k * u * (|L| + 2 sqrt(L) (P + Y))
#: by Cauchy-Schwarz, with P, Y the largest |pred| and |y| (P ~ Y: we take 2Y). Near
#: convergence the sqrt(L) term dominates: a first version bounded delta by k * u * |L|
#: alone and failed at sgd_two_relu's last steps (L ~ 1e-11), which is how this was found.
#: The sum of both errors is smallest at h ~ (3 delta / |L'''|)^(1/3); with |L'''| of the
#: order of |L| / |t|^3 that is h = u^(1/3) * max(1, |t|) (about 4.8e-6 for |t| <= 1),
#: and both errors are then of order u^(2/3) ~ 2e-11 relative.
FD_STEP = UNIT_ROUNDOFF["float64"] ** (1 / 3)

#: Safety factor on the estimated error: the rounding bound is a bound, but the truncation
#: term is estimated by Richardson extrapolation, |D(2h) - D(h)| / 3, which is itself only
#: accurate to leading order.
FD_SAFETY = 10.0


def fd_step(value: float) -> float:
    """Step for a central difference in a parameter of size ``value``."""
    return FD_STEP * max(1.0, abs(value))


def fd_tolerance(loss: float, h: float, d_h: float, d_2h: float, target_scale: float) -> float:
    """Absolute tolerance of a central difference ``d_h`` (with ``d_2h`` at step 2h), for a
    loss whose targets are at most ``target_scale`` in size."""
    delta = OPS_PER_STEP * UNIT_ROUNDOFF["float64"] * (
        abs(loss) + 2 * abs(loss) ** 0.5 * 2 * target_scale)
    rounding = delta / h
    truncation = abs(d_2h - d_h) / 3
    return FD_SAFETY * (rounding + truncation)


#: A kink the model does not declare (a ReLU without ``relu=``, an abs) is found from the loss
#: itself, where a central difference disagrees with the manual gradient. With
#: gap(s) = |L(s + h) - 2 L(s) + L(s - h)| / h, the difference of the one-sided slopes at s:
#:
#: * where L is smooth on [s - h, s + h], gap(s) = h |L''| plus rounding 4 delta / h (delta as
#:   in :func:`fd_tolerance`): about u^(1/3) ~ 5e-6 of the slope's scale;
#: * where L' jumps by J at s + r, |r| < h (a ReLU unit changing sides), gap(s) =
#:   (1 - |r| / h) |J|, of the order of the slope itself, and the central difference, the mean
#:   of the two one-sided slopes, lies gap(s) / 2 from the slope at s on either side (which
#:   autograd and the manual backward take; at r = 0, a convention between the two).
#:
#: So a kink within reach of a component at t is reported, and no difference there, when both
#: hold:
#:
#: * the gap at t accounts for the disagreement: |manual - fd| <= gap(t) (a kink makes it
#:   gap(t) / 2; the factor 2 leaves room for the curvature and rounding beside it). A wrong
#:   manual gradient is off by the slope's own size, far more than a smooth loss's gap;
#: * the gap is a spike at t: gap(t) > FD_KINK_SPIKE * max(gap(t - D), gap(t + D)), with
#:   probes D = FD_KINK_PROBE * h away. Their stencils, 7h to 9h from t, lie beyond the reach
#:   (2h) of the differences at t. Over D a smooth loss's gap changes by a factor
#:   1 + O(D |L'''| / |L''|) = 1 + O(1e-4) (these losses are polynomials on each piece, with
#:   |L'''| / |L''| of order 1 / max(1, |t|)); a kink's gap against its neighbours' is
#:   |J| / (h |L''|), of order 1 / u^(1/3) = 2e5 for a jump of the slope's order.
#:   FD_KINK_SPIKE = 100 lies two orders of magnitude from either. Where a neighbour's gap is
#:   rounding only (L'' = 0), the first condition has already put gap(t) above the
#:   difference's tolerance, 10 times that rounding.
#:
#: A probe that lands on another kink makes its gap large, and no kink is reported: the
#: disagreement is then shown as it is, never hidden on a guess.
FD_KINK_PROBE = 8.0
FD_KINK_SPIKE = 100.0


def fd_kink(error: float, gap: float, around: float) -> bool:
    """Whether a central difference that disagrees with the manual gradient by ``error`` is
    explained by a kink within reach: ``gap``, the one-sided slopes' difference at the
    component, against ``around``, the larger of theirs FD_KINK_PROBE steps either side."""
    return error <= gap and gap > FD_KINK_SPIKE * around


# --------------------------------------------------------------------------- one run's own values
#: Two losses of one run closer than this (relative) are "the same value" when its
#: dynamics are read: a fixed point, a cycle, or a loss that no longer moves. It must sit
#: above the run's own rounding noise where the loss settles (there the residuals y - O
#: cancel, and a loss of m squared residuals wobbles by some hundreds of ulps), and far
#: below any real movement. float64: 1e-9 (4.5e6 u). float32: 1e-5 (170 u); a float32
#: 2-cycle's values were measured to wobble by 1e-6 relative from one period to the next,
#: which 1e-9 read as a period of 4.
SAME_VALUE = {"float64": 1e-9, "float32": 1e-5}


# --------------------------------------------------------------------------- float32
#: A float32 run "drifts" once its normwise relative error from the float64 reference
#: exceeds this (the threshold the report gives the first step of). It is also the
#: precision at which a float32 run's qualitative behaviour is judged the same as the
#: reference's: cycle values within DRIFT relative. The bound rtol(S, "float32")
#: = 32 * 6e-8 * S (1.9e-3 for 1000 steps, 5.7e-3 for 3000) still applies to every step.
DRIFT = 1e-3


def behaviour_rtol(dtype: str, steps: int) -> float:
    """Relative tolerance on cycle values when comparing two runs' dynamics."""
    return rtol(steps, dtype) if dtype == "float64" else DRIFT


# --------------------------------------------------------------------------- two layers, any shape
def two_layer_gradient_bound(x, y, W1, b1, W2, b2, outputs) -> tuple:
    """Elementwise bound on |manual - autograd| for one step of a two-layer network
    ``O = act2(act1(x W1 + b1) W2 + b2)`` with a mean-squared error, as bounds on the gradients
    of (W1, b1, W2, b2), in that order: the documents' class model (whose case names them,
    ``reference/relu_class.py``).

    A first-order running error analysis of one step, E = OPS_PER_STEP * u per operation
    chain (sums here have at most 4 terms, well inside 32). Both implementations compute
    the same sums of products in other orders, so each is within the bound below of the
    exact value, and their difference within twice that.

    * Forward: a = x W1 + b1 is off by E (|x| |W1| + |b1|); every activation used here is
      1-Lipschitz, so A inherits that error plus its own rounding, and z, O likewise.
    * dL_dO = 2 (O - y) / m: O - y cancels near a fit, so the forward's *absolute* error
      of O enters dL_dO in full. (The dev hypothesis profile found this: m = 1, identity
      layers, JAX summing x @ W1 in another order.)
    * Activation derivatives lie in [0, 1] and are 1-Lipschitz here (relu away from its
      kink), so each is bounded by 1 and moves by at most the error of its argument, plus
      an absolute E: ``1 - tanh**2`` and ``s * (1 - s)`` cancel when the unit saturates,
      which made manual and autograd differ by up to 1.8e-12 *relative* on random models.
    * Each gradient then gets the errors of its factors plus E times its terms' magnitudes.

    ``outputs`` is the forward's (a, A, z, O); shapes as in ``LinearRegressionNN.backward``,
    or with a leading axis of steps on every argument (then every bound has it too).
    """
    E = OPS_PER_STEP * UNIT_ROUNDOFF["float64"]

    def T(v):
        return np.swapaxes(v, -1, -2)

    def total(v):
        return np.sum(v, axis=(-2, -1))

    x = np.abs(np.asarray(x, np.float64))
    W1, W2 = (np.abs(np.asarray(w, np.float64)) for w in (W1, W2))
    b1, b2 = (np.abs(np.asarray(b, np.float64))[..., None, None] for b in (b1, b2))
    _, A, _, out = (np.asarray(v, np.float64) for v in outputs)
    A, m = np.abs(A), out.shape[-2]
    # forward errors (absolute)
    err_a = E * (x @ W1 + b1)                                        # (m, h)
    err_A = err_a + E * A
    err_z = E * (A @ W2 + b2) + err_A @ W2                           # (m, o)
    err_O = err_z + E * np.abs(out)
    # backward magnitudes (derivatives bounded by 1) and their errors
    D_O = np.abs(2 * (out - np.asarray(y, np.float64)) / m)          # (m, o)
    err_DO = 2 / m * err_O + E * D_O
    D_z, err_Dz = D_O, err_DO + D_O * (err_z + E)
    D_A = D_z @ T(W2)                                                # (m, h)
    err_DA = err_Dz @ T(W2) + E * D_A
    D_a, err_Da = D_A, err_DA + D_A * (err_a + E)
    one = (T(x) @ err_Da + E * (T(x) @ D_a), total(err_Da) + E * total(D_a),
           T(A) @ err_Dz + T(err_A) @ D_z + E * (T(A) @ D_z), total(err_Dz) + E * total(D_z))
    return tuple(2 * v for v in one)


# --------------------------------------------------------------------------- nightly diff
#: ``crosscheck diff OLD.json NEW.json`` compares two reports' errors, group by group (the
#: trajectories' loss, grads, params and predictions; the local question's loss and each
#: parameter), each the worst normwise relative error of its run. Two nights with the same
#: versions give bitwise the same numbers (the runs are deterministic); a new release changes
#: them, and most such changes are rounding: a reordered sum moves an error of a few u by a
#: few u, which can be a large *factor* (1 u -> 10 u is x10) and means nothing. An error is
#: past the budget, and fails the nightly, only when both hold:
#:
#: * it grew by more than DIFF_GROWTH = 10, an order of magnitude (from an exact 0, any
#:   growth counts). Two correct autograd implementations of the same run, which differ in
#:   exactly this way (kernels, summation order), were measured to differ from each other by
#:   at most x3.8 on every error of the documents' runs where both exceed 1e-20 (linear_bias's
#:   params: torch 3.0e-15, jax 1.1e-14; near 0 a factor means nothing: sgd_two_relu's loss
#:   errors are 3e-25 and 2e-16), so x10 is more than reordering alone has been seen to do;
#: * it now uses more than DIFF_SHARE = 1/2 of its tolerance (the new report's: the envelope
#:   where the global check ends, or the local bound). Anything under the tolerance is within
#:   what rounding may do, so growth below half of it is rounding whatever the factor; above
#:   half, the margin left is under 2, and one more change of the kind fails ``run`` itself.
#:   The largest share any error of the documents' runs uses is 0.14 (a local gradient error
#:   of 4.8e-16, 4.3 u of the 32 u bound), so half leaves x3.7 of room above what is there.
#:
#: So a local error of 1e-16 growing x10 to 1e-15 (9 u of 32 u, 28 %) passes, while a
#: trajectories' error of 2.5e-13 growing to 9e-12 under an envelope of 1.4e-11 (64 %) fails.
#: Growth by more than DIFF_GROWTH is shown either way. A NaN error where there was a number
#: fails; a tolerance that is not finite (a diverging run) leaves no share to judge by.
DIFF_GROWTH = 10.0
DIFF_SHARE = 0.5


def grew(old: float, new: float) -> bool:
    """Whether an error grew by more than DIFF_GROWTH (or became NaN)."""
    if math.isnan(new):
        return not math.isnan(old)
    return not math.isnan(old) and new > DIFF_GROWTH * old


def past_budget(old: float, new: float, tolerance: float) -> bool:
    """Whether an error's growth from ``old`` to ``new`` fails the nightly (see above)."""
    if not grew(old, new):
        return False
    if math.isnan(new):
        return True
    return math.isfinite(tolerance) and tolerance > 0 and new > DIFF_SHARE * tolerance


# --------------------------------------------------------------------------- points (check_gradient)
#: A random point of ``crosscheck.check_gradient`` moves each parameter by a standard normal
#: times this share of its tensor's largest magnitude (1 for a tensor of zeros): far enough
#: that the draws are other points (other ReLU patterns, other saturations), near enough to
#: stay where the model is meant to run. Its points are judged with the local question's
#: own tolerance (:func:`local_rtol`), as a run's steps are.
DRAW_SCALE = 0.5
#: A draw where the loss or the manual gradient is not a finite number (outside the loss's
#: domain: a log of a negative prediction) is drawn again, at most this many times; a
#: model whose loss is finite almost nowhere near its start keeps its non-finite draw, and
#: the check says nothing was compared there.
REDRAWS = 10
