"""``examples/adam_minibatch.py`` with the L2 penalty's gradient missing its factor 2: the
penalty is ``LAM * sum(W ** 2)`` but the backward adds ``LAM * W``, the gradient of
``LAM / 2 * sum(W ** 2)``, the other common way of writing weight decay. The data term,
the biases' gradients and the Adam update are right.

Must be caught as a wrong backward at step 0 on the penalised parameters, W1 and W2 (off
by ``LAM * W``, up to 9e-3 here against gradients of about 0.3), and on no other: b1 and
b2 agree with autograd.
"""

import dataclasses

import numpy as np
from _examples import example

base = example("adam_minibatch")   # the correct model; only its backward is replaced
LAM = base.LAM


def backward(p, x, y):
    m = x.shape[0]
    h = np.tanh(x @ p["W1"] + p["b1"])                    # (m, h)
    scores = h @ p["W2"] + p["b2"]                        # (m, k)
    e = np.exp(scores - scores.max(axis=1, keepdims=True))
    probs = e / e.sum(axis=1, keepdims=True)
    d_scores = probs.copy()
    d_scores[np.arange(m), y] -= 1                        # softmax minus the one-hot of y
    d_scores /= m                                         # the loss is a mean over the batch
    d_h = d_scores @ p["W2"].T                            # (m, h)
    d_z1 = d_h * (1 - h ** 2)                             # (m, h)
    return {"W1": x.T @ d_z1 + LAM * p["W1"], "b1": d_z1.sum(axis=0),      # the mistake: 2 * LAM
            "W2": h.T @ d_scores + LAM * p["W2"], "b2": d_scores.sum(axis=0)}


model = dataclasses.replace(base.model, name="l2_missing_factor", backward=backward)
