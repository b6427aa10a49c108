"""line_fit with a backward whose bias gradient is NaN from the first step (0 * inf in a
hand-written normalisation): a wrong manual gradient, caught at step 0 on ``b`` like any
other."""

import numpy as np
from line_fit import backward as right
from line_fit import forward, loss, x, y

from crosscheck import Model


def backward(p, x, y):
    grads = right(p, x, y)
    with np.errstate(invalid="ignore"):
        scale = np.inf * 0.0                              # the mistake: NaN
    return {"w": grads["w"], "b": grads["b"] * scale}


model = Model(name="nan_gradient", x=x, y=y, init={"w": np.zeros((1, 1)), "b": np.zeros(1)},
              forward=forward, loss=loss, backward=backward, lr=0.1, epochs=5)
