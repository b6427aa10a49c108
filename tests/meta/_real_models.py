"""Small networks written the way people write them when they learn backprop, each with a
correct hand-written NumPy backward and copies of it with one line planted wrong.

The architectures, each a builder ``builder(backward=None, name=None) -> Model`` (the
correct backward when none is given):

* :func:`rnn`: a tanh RNN unrolled over T = 4 steps, in the column convention of the well-known
  minimal character RNN (hidden state a column, ``h = tanh(Wxh @ x + Whh @ h + bh)``,
  ``dhnext = Whh.T @ dhraw``), a linear readout at every step, the squared error summed over
  the outputs and averaged over the steps; the time steps are the samples, in columns
  (``sample_axis=1``), so the whole sequence is one full batch. Its backward clips every
  gradient to [-5, 5] as that program does (it never fires here).
* :func:`sigmoid_mlp`: 2 -> 4 -> 4 -> 1, sigmoid everywhere, the mean squared error over
  8 samples; the hidden-to-hidden weight ``W2`` is square, so a forgotten ``.T`` keeps its shape.
* :func:`softmax_l2`: dense 3 -> 5, ReLU, dense 5 -> 3, softmax and categorical cross-entropy
  over 24 samples with integer labels, an L2 penalty on the weights and on the biases, the
  backward spelled as in "Neural Networks from Scratch" (``dvalues``, ``dinputs[z <= 0] = 0``,
  ``2 * lam * W``). :func:`relu3` is a three-layer ReLU regression (3 -> 4 -> 4 -> 2).
* :func:`conv`: one 3x3 kernel slid over single-channel 5x5 images (valid), tanh, a linear
  readout of the 3x3 feature map, the mean squared error; the backward loops over the
  kernel's offsets, each one's 3x3 window of the images against the feature map's gradient.
* :func:`maximum_kink` and :func:`where_kink_correct`: a one-hidden-layer ReLU regression on
  integer data, started where some pre-activations are exactly 0; the ReLU spelled
  ``xp.maximum(z, 0 * z)`` (derivative 1/2 at 0 in torch and JAX, against the backward's
  ``(z > 0)``) or ``xp.where(z > 0, z, 0 * z)`` (derivative 0 there: correct).

Every forward taps its pre-activations (``tap("z1", ...)``, the RNN's ``tap("z<t>", ...)``);
the ReLU models other than the kink pair declare them in ``relu=``. Data come from
``numpy.random.default_rng`` with fixed seeds; no float pre-activation sits on a ReLU kink.
Each model trains 3 full-batch epochs at lr 0.05 or 0.1.

``MISTAKES``: ``(id, builder name, backward, expected family, expected step)``, each backward
the correct one with one line replaced (``LINES[id]``: the line as written, and as the
mistake has it); ``CORRECT``: the builders whose own backward must agree.
"""

from __future__ import annotations

import inspect
import linecache
import textwrap

import numpy as np

from crosscheck import Model

LR = 0.1


def keep(name, t):
    """The tap a forward gets when nothing records: names ``t`` and returns it."""
    return t


def mse(xp, pred, y):
    return xp.mean((pred - y) ** 2)


def sigmoid(xp, z):
    return 1 / (1 + xp.exp(-z))


# --------------------------------------------------------------------------------------------
# 1. A tanh RNN, backprop through time in the minimal char-RNN's column convention.

rng = np.random.default_rng(2024)
RNN_T, RNN_IN, RNN_H, RNN_OUT = 4, 2, 3, 2
RNN_X = rng.normal(size=(RNN_IN, RNN_T))                   # one column per time step
RNN_Y = 0.5 * rng.normal(size=(RNN_OUT, RNN_T))            # the target at every step
RNN_INIT = {"Wxh": 0.5 * rng.normal(size=(RNN_H, RNN_IN)), "Whh": 0.5 * rng.normal(size=(RNN_H, RNN_H)),
            "Why": 0.5 * rng.normal(size=(RNN_OUT, RNN_H)), "bh": np.zeros((RNN_H, 1)),
            "by": np.zeros((RNN_OUT, 1))}
RNN_CLIP = 5.0


def rnn_forward(xp, p, x, tap=keep):
    h = xp.zeros((p["Whh"].shape[0], 1), dtype=x.dtype)
    ys = []
    for t in range(x.shape[1]):
        z = tap(f"z{t}", p["Wxh"] @ x[:, t:t + 1] + p["Whh"] @ h + p["bh"])   # (H, 1)
        h = xp.tanh(z)
        ys.append(p["Why"] @ h + p["by"])                                      # (O, 1)
    return xp.concat(ys, axis=1)                                               # (O, T)


def rnn_loss(xp, pred, y):
    return xp.sum((pred - y) ** 2) / pred.shape[1]        # summed over outputs, mean over steps


def rnn_backward(p, x, y):
    Wxh, Whh, Why, bh, by = p["Wxh"], p["Whh"], p["Why"], p["bh"], p["by"]
    T = x.shape[1]
    hs, ys = {-1: np.zeros((Whh.shape[0], 1))}, {}
    for t in range(T):
        hs[t] = np.tanh(Wxh @ x[:, t:t + 1] + Whh @ hs[t - 1] + bh)
        ys[t] = Why @ hs[t] + by
    dWxh, dWhh, dWhy = np.zeros_like(Wxh), np.zeros_like(Whh), np.zeros_like(Why)
    dbh, dby = np.zeros_like(bh), np.zeros_like(by)
    dhnext = np.zeros_like(hs[0])
    for t in reversed(range(T)):
        dy = 2 * (ys[t] - y[:, t:t + 1]) / T
        dWhy += dy @ hs[t].T
        dby += dy
        dh = Why.T @ dy + dhnext                          # from the readout and from step t + 1
        dhraw = (1 - hs[t] * hs[t]) * dh                  # through the tanh
        dbh += dhraw
        dWxh += dhraw @ x[:, t:t + 1].T
        dWhh += dhraw @ hs[t - 1].T
        dhnext = Whh.T @ dhraw
    for dparam in [dWxh, dWhh, dWhy, dbh, dby]:
        np.clip(dparam, -RNN_CLIP, RNN_CLIP, out=dparam)  # against exploding gradients
    return {"Wxh": dWxh, "Whh": dWhh, "Why": dWhy, "bh": dbh, "by": dby}


def rnn(backward=None, name=None) -> Model:
    return Model(name=name or "real_rnn", x=RNN_X, y=RNN_Y, init=RNN_INIT, forward=rnn_forward,
                 loss=rnn_loss, backward=backward or rnn_backward, lr=LR, epochs=3, sample_axis=1)


# --------------------------------------------------------------------------------------------
# 2. A sigmoid MLP, 2 -> 4 -> 4 -> 1, rows are samples (the CS231n layout).

# Seed 12: no bias gradient here is a near-cancelling sum (with seed 7 db3 summed 8 terms to
# 1/1800 of their sizes, and torch and JAX parted by 5e-14 relative there).
rng = np.random.default_rng(12)
SIG_X = rng.normal(size=(8, 2))
SIG_Y = rng.uniform(0.1, 0.9, size=(8, 1))
SIG_INIT = {"W1": rng.normal(size=(2, 4)), "b1": np.zeros(4), "W2": rng.normal(size=(4, 4)),
            "b2": np.zeros(4), "W3": rng.normal(size=(4, 1)), "b3": np.zeros(1)}


def sigmoid_forward(xp, p, x, tap=keep):
    a1 = sigmoid(xp, tap("z1", x @ p["W1"] + p["b1"]))
    a2 = sigmoid(xp, tap("z2", a1 @ p["W2"] + p["b2"]))
    return sigmoid(xp, tap("z3", a2 @ p["W3"] + p["b3"]))


def sigmoid_backward(p, x, y):
    m = x.shape[0]
    a1 = 1 / (1 + np.exp(-(x @ p["W1"] + p["b1"])))
    a2 = 1 / (1 + np.exp(-(a1 @ p["W2"] + p["b2"])))
    a3 = 1 / (1 + np.exp(-(a2 @ p["W3"] + p["b3"])))
    da3 = 2 * (a3 - y) / m                                # one output: the mean is over the m samples
    dz3 = da3 * a3 * (1 - a3)
    dW3 = a2.T @ dz3
    db3 = dz3.sum(axis=0)
    da2 = dz3 @ p["W3"].T
    dz2 = da2 * a2 * (1 - a2)
    dW2 = a1.T @ dz2
    db2 = dz2.sum(axis=0)
    da1 = dz2 @ p["W2"].T
    dz1 = da1 * a1 * (1 - a1)
    dW1 = x.T @ dz1
    db1 = dz1.sum(axis=0)
    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2, "W3": dW3, "b3": db3}


def sigmoid_mlp(backward=None, name=None) -> Model:
    return Model(name=name or "real_sigmoid_mlp", x=SIG_X, y=SIG_Y, init=SIG_INIT, forward=sigmoid_forward,
                 loss=mse, backward=backward or sigmoid_backward, lr=LR, epochs=3)


# --------------------------------------------------------------------------------------------
# 3. A softmax classifier with L2 on weights and biases ("Neural Networks from Scratch"), and
#    a three-layer ReLU regression.

rng = np.random.default_rng(11)
SOFT_X = rng.normal(size=(24, 3))
SOFT_Y = np.argmax(SOFT_X @ np.array([[1.5, -1.0, 0.0], [0.0, 1.5, -1.0], [-1.0, 0.0, 1.5]]), axis=1)
SOFT_INIT = {"W1": 0.5 * rng.normal(size=(3, 5)), "b1": np.zeros((1, 5)),
             "W2": 0.5 * rng.normal(size=(5, 3)), "b2": np.zeros((1, 3))}
L2_W = 0.01                                               # weight_regularizer_l2
L2_B = 0.01                                               # bias_regularizer_l2


def softmax_forward(xp, p, x, tap=keep):
    z1 = tap("z1", x @ p["W1"] + p["b1"])
    return xp.where(z1 > 0, z1, 0 * z1) @ p["W2"] + p["b2"]


def cross_entropy(xp, scores, y):
    shifted = scores - xp.max(scores, axis=1, keepdims=True)
    log_probs = shifted - xp.log(xp.sum(xp.exp(shifted), axis=1, keepdims=True))
    one_hot = xp.astype(y[:, None] == xp.arange(scores.shape[1]), scores.dtype)
    return -xp.mean(xp.sum(one_hot * log_probs, axis=1))


def l2_penalty(xp, p):
    return (L2_W * (xp.sum(p["W1"] ** 2) + xp.sum(p["W2"] ** 2))
            + L2_B * (xp.sum(p["b1"] ** 2) + xp.sum(p["b2"] ** 2)))


def softmax_backward(p, x, y):
    samples = len(x)
    z1 = x @ p["W1"] + p["b1"]
    a1 = np.maximum(0, z1)
    scores = a1 @ p["W2"] + p["b2"]
    exp_values = np.exp(scores - np.max(scores, axis=1, keepdims=True))
    probs = exp_values / np.sum(exp_values, axis=1, keepdims=True)
    # softmax and categorical cross-entropy together
    dvalues = probs.copy()
    dvalues[range(samples), y] -= 1
    dvalues = dvalues / samples
    # dense 2
    dweights2 = a1.T @ dvalues
    dbiases2 = np.sum(dvalues, axis=0, keepdims=True)
    dweights2 += 2 * L2_W * p["W2"]
    dbiases2 += 2 * L2_B * p["b2"]
    dinputs2 = dvalues @ p["W2"].T
    # ReLU
    dz1 = dinputs2.copy()
    dz1[z1 <= 0] = 0
    # dense 1
    dweights1 = x.T @ dz1
    dbiases1 = np.sum(dz1, axis=0, keepdims=True)
    dweights1 += 2 * L2_W * p["W1"]
    dbiases1 += 2 * L2_B * p["b1"]
    return {"W1": dweights1, "b1": dbiases1, "W2": dweights2, "b2": dbiases2}


def softmax_l2(backward=None, name=None) -> Model:
    return Model(name=name or "real_softmax_l2", x=SOFT_X, y=SOFT_Y, init=SOFT_INIT, forward=softmax_forward,
                 loss=cross_entropy, penalty=l2_penalty, backward=backward or softmax_backward,
                 lr=LR, epochs=3, relu=("z1",))


rng = np.random.default_rng(5)
RELU3_X = rng.normal(size=(10, 3))
RELU3_Y = rng.normal(size=(10, 2))
# ReLU biases start at a small constant (0.01): at 0, a sample whose first-layer units are
# all off would put every second-layer pre-activation exactly on the kink.
RELU3_INIT = {"W1": rng.normal(size=(3, 4)), "b1": np.full(4, 0.01), "W2": rng.normal(size=(4, 4)),
              "b2": np.full(4, 0.01), "W3": rng.normal(size=(4, 2)), "b3": np.zeros(2)}


def relu3_forward(xp, p, x, tap=keep):
    z1 = tap("z1", x @ p["W1"] + p["b1"])
    z2 = tap("z2", (z1 * (z1 > 0)) @ p["W2"] + p["b2"])
    return (z2 * (z2 > 0)) @ p["W3"] + p["b3"]


def relu3_backward(p, x, y):
    z1 = x @ p["W1"] + p["b1"]
    a1 = np.maximum(0, z1)
    z2 = a1 @ p["W2"] + p["b2"]
    a2 = np.maximum(0, z2)
    pred = a2 @ p["W3"] + p["b3"]
    dpred = 2 * (pred - y) / y.size
    dW3 = a2.T @ dpred
    db3 = dpred.sum(axis=0)
    dz2 = dpred @ p["W3"].T
    dz2[z2 <= 0] = 0
    dW2 = a1.T @ dz2
    db2 = dz2.sum(axis=0)
    dz1 = dz2 @ p["W2"].T
    dz1[z1 <= 0] = 0
    dW1 = x.T @ dz1
    db1 = dz1.sum(axis=0)
    return {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2, "W3": dW3, "b3": db3}


def relu3(backward=None, name=None) -> Model:
    return Model(name=name or "real_relu3", x=RELU3_X, y=RELU3_Y, init=RELU3_INIT, forward=relu3_forward,
                 loss=mse, backward=backward or relu3_backward, lr=0.05, epochs=3, relu=("z1", "z2"))


# --------------------------------------------------------------------------------------------
# 4. One 3x3 convolution (valid, one channel) over 5x5 images, tanh, a linear readout.

rng = np.random.default_rng(3)
CONV_X = rng.normal(size=(4, 5, 5))
CONV_Y = 0.5 * rng.normal(size=(4, 1))
CONV_INIT = {"K": 0.5 * rng.normal(size=(3, 3)), "bk": np.zeros(1), "Wo": 0.5 * rng.normal(size=(9, 1)),
             "bo": np.zeros(1)}


def conv_forward(xp, p, x, tap=keep):
    maps = []
    for i in range(3):                                    # the window's top-left corner, row by row
        for j in range(3):
            maps.append(xp.sum(x[:, i:i + 3, j:j + 3] * p["K"], axis=(1, 2)))
    z = tap("z", xp.stack(maps, axis=1) + p["bk"])       # (N, 9): the 3x3 feature map, flattened
    return xp.tanh(z) @ p["Wo"] + p["bo"]


def conv_backward(p, x, y):
    N, K = x.shape[0], p["K"]
    z = np.zeros((N, 3, 3))
    for i in range(3):
        for j in range(3):
            z[:, i, j] = np.sum(x[:, i:i + 3, j:j + 3] * K, axis=(1, 2))
    a = np.tanh(z + p["bk"])
    pred = a.reshape(N, 9) @ p["Wo"] + p["bo"]
    dpred = 2 * (pred - y) / N
    dWo = a.reshape(N, 9).T @ dpred
    dbo = dpred.sum(axis=0)
    da = (dpred @ p["Wo"].T).reshape(N, 3, 3)
    dz = da * (1 - a ** 2)
    dbk = np.array([dz.sum()])
    dK = np.zeros_like(K)
    for u in range(3):                                    # each kernel offset sees a 3x3 window
        for v in range(3):
            dK[u, v] = np.sum(x[:, u:u + 3, v:v + 3] * dz)
    return {"K": dK, "bk": dbk, "Wo": dWo, "bo": dbo}


def conv(backward=None, name=None) -> Model:
    return Model(name=name or "real_conv", x=CONV_X, y=CONV_Y, init=CONV_INIT, forward=conv_forward,
                 loss=mse, backward=backward or conv_backward, lr=LR, epochs=3)


# --------------------------------------------------------------------------------------------
# 5. A ReLU spelled with maximum on integer data that starts on the kink, and spelled with where.

KINK_X = np.array([[0.0, 1.0], [1.0, -1.0], [2.0, 1.0], [0.0, -2.0], [-1.0, 2.0], [1.0, 0.0],
                   [-2.0, -1.0], [2.0, -2.0]])
KINK_Y = KINK_X @ np.array([[1.0], [-1.0]]) + 1.0
# z[:, 0] = x0 is 0 on samples 0 and 3; z[:, 1] = x0 + x1 is 0 on samples 1 and 7.
KINK_INIT = {"W1": np.array([[1.0, 1.0, -1.0], [0.0, 1.0, 2.0]]), "b1": np.array([0.0, 0.0, 0.5]),
             "W2": np.array([[1.0], [-1.0], [0.5]]), "b2": np.array([0.0])}


def maximum_forward(xp, p, x, tap=keep):
    z = tap("z", x @ p["W1"] + p["b1"])
    return xp.maximum(z, 0 * z) @ p["W2"] + p["b2"]


def where_forward(xp, p, x, tap=keep):
    z = tap("z", x @ p["W1"] + p["b1"])
    return xp.where(z > 0, z, 0 * z) @ p["W2"] + p["b2"]


def kink_backward(p, x, y):
    z = x @ p["W1"] + p["b1"]
    h = np.maximum(z, 0)
    dpred = 2 * (h @ p["W2"] + p["b2"] - y) / y.size
    dz = (dpred @ p["W2"].T) * (z > 0)
    return {"W1": x.T @ dz, "b1": dz.sum(axis=0), "W2": h.T @ dpred, "b2": dpred.sum(axis=0)}


def maximum_kink(backward=None, name=None) -> Model:
    return Model(name=name or "real_maximum_kink", x=KINK_X, y=KINK_Y, init=KINK_INIT,
                 forward=maximum_forward, loss=mse, backward=backward or kink_backward, lr=0.05, epochs=3)


def declared_kink(backward=None, name=None) -> Model:
    """:func:`where_kink_correct` with its ReLU declared (``relu=("z",)``)."""
    return Model(name=name or "real_declared_kink", x=KINK_X, y=KINK_Y, init=KINK_INIT,
                 forward=where_forward, loss=mse, backward=backward or kink_backward, lr=0.05, epochs=3,
                 relu=("z",))


def where_kink_correct(backward=None, name=None) -> Model:
    return Model(name=name or "real_where_kink_correct", x=KINK_X, y=KINK_Y, init=KINK_INIT,
                 forward=where_forward, loss=mse, backward=backward or kink_backward, lr=0.05, epochs=3)


# --------------------------------------------------------------------------------------------
# 6. A linear regression with an L1 penalty on W and L2 on b, one input feature always 0: its
# weights sit at exactly 0, where torch's derivative of abs is 0 and JAX's 1, so the two
# autograds part at every step. The backward takes torch's (np.sign). A mistake on b, where
# both autograds agree exactly, must still be caught, at step 1 (b starts at 0).

rng = np.random.default_rng(0)
L1_X = rng.normal(size=(10, 3))
L1_X[:, 2] = 0.0                                           # a padding feature
L1_Y = rng.normal(size=(10, 2))
L1_INIT = {"W": np.array([[0.5, -0.3], [0.2, 0.4], [0.0, 0.0]]), "b": np.zeros(2)}
L1_W, L2_BIAS = 0.01, 0.01


def linear_forward(xp, p, x, tap=keep):
    return x @ p["W"] + p["b"]


def l1_penalty(xp, p):
    return L1_W * xp.sum(xp.abs(p["W"])) + L2_BIAS * xp.sum(p["b"] ** 2)


def l1_backward(p, x, y):
    d = 2 * (x @ p["W"] + p["b"] - y) / y.size
    dW = x.T @ d + L1_W * np.sign(p["W"])
    db = d.sum(axis=0) + 2 * L2_BIAS * p["b"]
    return {"W": dW, "b": db}


def l1_padding(backward=None, name=None) -> Model:
    return Model(name=name or "real_l1_padding", x=L1_X, y=L1_Y, init=L1_INIT, forward=linear_forward,
                 loss=mse, penalty=l1_penalty, backward=backward or l1_backward, lr=0.1, epochs=3)


# --------------------------------------------------------------------------------------------
# The planted mistakes.

BUILDERS = {f.__name__: f for f in (rnn, sigmoid_mlp, softmax_l2, relu3, conv, maximum_kink,
                                    where_kink_correct, declared_kink, l1_padding)}
#: Builders whose own backward is correct: every framework must agree with it.
#: (l1_padding's JAX leg is "nothing compared": JAX's abs'(0) is 1, its backward takes torch's 0.)
CORRECT = ("rnn", "sigmoid_mlp", "softmax_l2", "relu3", "conv", "where_kink_correct")


def planted(backward, old: str, new: str, label: str):
    """``backward`` with the text ``old`` (found exactly once in its source) replaced by ``new``,
    compiled with the original's globals; its source stays readable to ``inspect``."""
    source = textwrap.dedent(inspect.getsource(backward))
    if source.count(old) != 1:
        raise ValueError(f"[{label}] the planted text must occur once in {backward.__name__}: {old!r}")
    text = source.replace(old, new)
    filename = f"<planted {label}: {backward.__name__} with one line changed>"
    linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
    namespace = dict(backward.__globals__)
    exec(compile(text, filename, "exec"), namespace)
    return namespace[backward.__name__]


# id -> (builder name, correct backward, the line as written, the line as the mistake has it,
#        expected family, expected step)
_PLANTS = {
    # RNN
    "rnn-dhnext-without-T": ("rnn", rnn_backward, "dhnext = Whh.T @ dhraw", "dhnext = Whh @ dhraw",
                             "transpose", 0),
    "rnn-missing-tanh-derivative": ("rnn", rnn_backward, "dhraw = (1 - hs[t] * hs[t]) * dh", "dhraw = dh",
                                    "activation_derivative", 0),
    "rnn-missing-1/T": ("rnn", rnn_backward, "dy = 2 * (ys[t] - y[:, t:t + 1]) / T",
                        "dy = 2 * (ys[t] - y[:, t:t + 1])", "constant_factor", 0),
    "rnn-clip-too-tight": ("rnn", rnn_backward, "np.clip(dparam, -RNN_CLIP, RNN_CLIP, out=dparam)",
                           "np.clip(dparam, -0.1, 0.1, out=dparam)", "clip", 0),
    "rnn-sign-dby": ("rnn", rnn_backward, "dby += dy", "dby -= dy", "sign", 0),
    # A ReLU's mask added to a tanh's derivative: wrong where z <= 0, and no missing mask.
    "rnn-extra-relu-mask": ("rnn", rnn_backward, "dhraw = (1 - hs[t] * hs[t]) * dh",
                            "dhraw = (1 - hs[t] * hs[t]) * dh * (hs[t] > 0)", "unknown", 0),
    # The gradient from step t + 1 dropped: backprop truncated to one step. No fingerprint
    # names it (each gradient loses a sum of later terms): "unknown", honestly.
    "rnn-no-carried-gradient": ("rnn", rnn_backward, "dh = Why.T @ dy + dhnext", "dh = Why.T @ dy",
                                "unknown", 0),
    # sigmoid MLP
    "sigmoid-W2-not-transposed": ("sigmoid_mlp", sigmoid_backward, 'da1 = dz2 @ p["W2"].T',
                                  'da1 = dz2 @ p["W2"]', "transpose", 0),
    "sigmoid-output-missing-prime": ("sigmoid_mlp", sigmoid_backward, "dz3 = da3 * a3 * (1 - a3)",
                                     "dz3 = da3", "activation_derivative", 0),
    "sigmoid-hidden-missing-prime": ("sigmoid_mlp", sigmoid_backward, "dz2 = da2 * a2 * (1 - a2)",
                                     "dz2 = da2", "activation_derivative", 0),
    "sigmoid-missing-1/m": ("sigmoid_mlp", sigmoid_backward, "da3 = 2 * (a3 - y) / m", "da3 = 2 * (a3 - y)",
                            "constant_factor", 0),
    "sigmoid-bias-mean-not-sum": ("sigmoid_mlp", sigmoid_backward, "db2 = dz2.sum(axis=0)",
                                  "db2 = dz2.mean(axis=0)", "constant_factor", 0),
    "sigmoid-sign-dW3": ("sigmoid_mlp", sigmoid_backward, "dW3 = a2.T @ dz3", "dW3 = -(a2.T @ dz3)",
                         "sign", 0),
    # softmax classifier with L2
    "softmax-no-divide-by-samples": ("softmax_l2", softmax_backward, "dvalues = dvalues / samples",
                                     "dvalues = dvalues", "constant_factor", 0),
    "l2-bias-wrong-sign": ("softmax_l2", softmax_backward, 'dbiases1 += 2 * L2_B * p["b1"]',
                           'dbiases1 -= 2 * L2_B * p["b1"]', "penalty", 1),   # b1 starts at 0
    "l2-missing-factor-2": ("softmax_l2", softmax_backward, 'dweights2 += 2 * L2_W * p["W2"]',
                            'dweights2 += L2_W * p["W2"]', "penalty", 0),
    "l2-missing": ("softmax_l2", softmax_backward, 'dweights1 += 2 * L2_W * p["W1"]', "pass",
                   "penalty", 0),
    "softmax-relu-mask-removed": ("softmax_l2", softmax_backward, "dz1[z1 <= 0] = 0", "pass",
                                  "dead_units", 0),
    # three ReLU layers: the first of the two masks removed
    "relu3-first-mask-removed": ("relu3", relu3_backward, "dz1[z1 <= 0] = 0", "pass", "dead_units", 0),
    # on the kink's data (pre-activations exactly 0): mistakes that are no kink
    "kink-data-missing-mask": ("where_kink_correct", kink_backward, "dz = (dpred @ p[\"W2\"].T) * (z > 0)",
                               "dz = dpred @ p[\"W2\"].T", "dead_units", 0),
    "kink-data-bias-gradient-only-where-nonzero": (
        "where_kink_correct", kink_backward, '"b1": dz.sum(axis=0)', '"b1": dz.sum(axis=0) * (p["b1"] != 0)',
        "unknown", 0),
    # the declared ReLU's kink taken as 1 by the backward where the forward's where gives 0:
    # a kink, not a missing mask (a unit exactly at 0 is on the kink, not off)
    "kink-declared-backward-ge": ("declared_kink", kink_backward, "dz = (dpred @ p[\"W2\"].T) * (z > 0)",
                                  "dz = (dpred @ p[\"W2\"].T) * (z >= 0)", "kink", 0),
    # the two autograds part on W (abs at 0); the mistake is on b, where they agree
    "l1-bias-l2-missing": ("l1_padding", l1_backward, "db = d.sum(axis=0) + 2 * L2_BIAS * p[\"b\"]",
                           "db = d.sum(axis=0)", "penalty", 1),
    # convolution
    "conv-kernel-rows-cols-swapped": ("conv", conv_backward, "dK[u, v] = np.sum(x[:, u:u + 3, v:v + 3] * dz)",
                                      "dK[u, v] = np.sum(x[:, v:v + 3, u:u + 3] * dz)", "transpose", 0),
    "conv-missing-tanh-derivative": ("conv", conv_backward, "dz = da * (1 - a ** 2)", "dz = da",
                                     "activation_derivative", 0),
    "conv-sign-dbk": ("conv", conv_backward, "dbk = np.array([dz.sum()])", "dbk = np.array([-dz.sum()])",
                      "sign", 0),
}

#: id -> (the line as written, the line as the mistake has it).
LINES = {k: (v[2], v[3]) for k, v in _PLANTS.items()}

#: (id, builder name, backward, expected family, expected step).
MISTAKES = [(k, builder, planted(backward, old, new, k), family, step)
            for k, (builder, backward, old, new, family, step) in _PLANTS.items()]
# The right code on a forward whose ReLU is spelled with maximum: the kink itself.
MISTAKES.append(("maximum-kink", "maximum_kink", kink_backward, "kink", 0))


def build(entry) -> Model:
    """The model of a ``MISTAKES`` entry, named after its id."""
    key, builder, backward, _, _ = entry
    return BUILDERS[builder](backward, name="real_" + key.replace("/", "_"))
