"""line_fit, whose JAX run stalls in the helper process: its forward, traced there, writes the
helper's pid to the file $STALLED and sleeps, so that a test can kill the helper in the middle
of a known run (tests/test_reliability_process.py). Run with ``--framework jax``: the reference
then runs in the main process, where the forward does not stall."""

import multiprocessing
import os
import time

import line_fit
from line_fit import backward, loss

from crosscheck import Model


def forward(xp, p, x):
    in_helper = multiprocessing.parent_process() is not None
    if in_helper and xp.__name__.startswith("jax"):         # (its start checks the model in NumPy)
        with open(os.environ["STALLED"], "w") as f:
            f.write(str(os.getpid()))
        time.sleep(60)
    return line_fit.forward(xp, p, x)


model = Model(
    name="line_fit_stalls",
    x=line_fit.x, y=line_fit.y,
    init=line_fit.model.init,
    forward=forward, loss=loss, backward=backward,
    lr=0.1, epochs=25,
)
