"""``examples/dropout_momentum.py`` with the first dropout mask missing from the backward:
the forward recomputed in ``backward`` applies both masks (so the prediction, and the
gradients of W2, b2, W3 and b3, are right), but the gradient flowing back into the first
hidden layer is not multiplied by ``D1``: dropped units get gradient, and kept ones lack
the ``1 / KEEP`` scale. The momentum update is right.

Must be caught as a wrong backward at step 0, on W1 and b1 (the parameters before the
forgotten mask) and on no other.
"""

import dataclasses

import numpy as np
from _examples import example

base = example("dropout_momentum")   # the correct model; only its backward is replaced


def backward(p, x, y, *, noise):
    m = x.shape[0]
    z1 = x @ p["W1"] + p["b1"]
    a1 = np.maximum(z1, 0) * noise["D1"]
    z2 = a1 @ p["W2"] + p["b2"]
    a2 = np.maximum(z2, 0) * noise["D2"]
    z3 = a2 @ p["W3"] + p["b3"]
    d_z3 = (1 / (1 + np.exp(-z3)) - y) / m                # (m, 1)
    d_a2 = d_z3 @ p["W3"].T * noise["D2"]                 # the mask again, scale included
    d_z2 = d_a2 * (z2 > 0)
    d_a1 = d_z2 @ p["W2"].T                               # the mistake: * noise["D1"] is missing
    d_z1 = d_a1 * (z1 > 0)
    return {"W1": x.T @ d_z1, "b1": d_z1.sum(axis=0), "W2": a1.T @ d_z2, "b2": d_z2.sum(axis=0),
            "W3": a2.T @ d_z3, "b3": d_z3.sum(axis=0)}


model = dataclasses.replace(base.model, name="dropout_mask_not_in_backward", backward=backward)
