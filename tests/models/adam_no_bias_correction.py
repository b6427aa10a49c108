"""``examples/adam_minibatch.py`` with the hand-written Adam missing its bias correction:
the moments are used as they are, though they start at 0. At the first step the update is
``LR * 0.1 g / (sqrt(0.001 g^2) + EPS)``, about ``3.16 * LR`` a coordinate instead of
``LR``, on every parameter, and it stays about 3 times too large all run long (the second
moment's correction, ``1 / sqrt(1 - 0.999^t)``, is still 3 at step 120). The backward is
right.

Must be caught as a wrong update (not a wrong backward) at step 0, on every parameter.
"""

import dataclasses

import numpy as np
from _examples import example

base = example("adam_minibatch")   # the correct model; only its update is replaced
LR, BETAS, EPS = base.LR, base.BETAS, base.EPS


def update(params, grads, state):
    """Adam; ``state`` starts empty."""
    b1, b2 = BETAS
    if not state:
        state["m"] = {k: np.zeros_like(v) for k, v in params.items()}
        state["v"] = {k: np.zeros_like(v) for k, v in params.items()}
    new = {}
    for k, g in grads.items():
        state["m"][k] = b1 * state["m"][k] + (1 - b1) * g
        state["v"][k] = b2 * state["v"][k] + (1 - b2) * g * g
        new[k] = params[k] - LR * state["m"][k] / (np.sqrt(state["v"][k]) + EPS)   # the mistake
    return new, state


model = dataclasses.replace(base.model, name="adam_no_bias_correction", update=update)
