"""``examples/dropout_momentum.py`` with the hand-written momentum update in the wrong order:
it moves the parameters by the buffer as it was before this step's gradient is added
(``p -= LR * buf`` first, then ``buf = MOMENTUM * buf + g``), so every step applies the
previous step's velocity. At step 0 the buffer is still 0 and the parameters do not move
at all, where ``torch.optim.SGD(momentum=0.9)`` moves them by ``LR * g``. The backward
is right.

Must be caught as a wrong update (not a wrong backward) at step 0, on every parameter.
"""

import dataclasses

import numpy as np
from _examples import example

base = example("dropout_momentum")   # the correct model; only its update is replaced
LR, MOMENTUM = base.LR, base.MOMENTUM


def update(params, grads, state):
    """SGD with momentum as torch.optim.SGD has it; ``state`` starts empty."""
    if not state:
        state["buf"] = {k: np.zeros_like(v) for k, v in params.items()}
    new = {}
    for k, g in grads.items():
        new[k] = params[k] - LR * state["buf"][k]         # the mistake: the buffer before g is in it
        state["buf"][k] = MOMENTUM * state["buf"][k] + g
    return new, state


model = dataclasses.replace(base.model, name="momentum_before_grad", update=update)
