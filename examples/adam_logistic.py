import numpy as np

from crosscheck import Model
from crosscheck.optim import Adam

rng = np.random.default_rng(4)
x = rng.normal(size=(32, 3))                                      # (m, n)
labels = (x @ np.array([1.0, -2.0, 0.5]) > 0).astype(int)         # (m,) integer classes
LR, B1, B2, EPS, L2 = 0.05, 0.9, 0.999, 1e-8, 1e-3

def forward(xp, p, x):
    return x @ p["w"] + p["b"]                                     # (m, 2) scores

def loss(xp, s, y):                                                # mean cross-entropy
    s = s - xp.max(s, axis=1, keepdims=True)
    logp = s - xp.log(xp.sum(xp.exp(s), axis=1, keepdims=True))
    return -xp.mean(xp.sum(xp.astype(y[:, None] == xp.arange(2), s.dtype) * logp, axis=1))

def penalty(xp, p):
    return L2 * xp.sum(p["w"] ** 2)

def backward(p, x, y):                                             # the code under test
    s = x @ p["w"] + p["b"]
    e = np.exp(s - s.max(axis=1, keepdims=True))
    d = (e / e.sum(axis=1, keepdims=True) - np.eye(2)[y]) / len(x)
    return {"w": x.T @ d + 2 * L2 * p["w"], "b": d.sum(axis=0)}

def update(p, g, state):                                           # a hand-written Adam, under test too
    t = state["t"] = state.get("t", 0) + 1
    for k in p:
        m = state[f"m{k}"] = B1 * state.get(f"m{k}", 0) + (1 - B1) * g[k]
        v = state[f"v{k}"] = B2 * state.get(f"v{k}", 0) + (1 - B2) * g[k] ** 2
        p[k] = p[k] - LR * (m / (1 - B1 ** t)) / (np.sqrt(v / (1 - B2 ** t)) + EPS)
    return p, state

model = Model(name="adam_logistic", x=x, y=labels,
              init={"w": np.zeros((3, 2)), "b": np.zeros(2)},
              forward=forward, loss=loss, backward=backward, penalty=penalty,
              lr=LR, epochs=20, batch=8, shuffle=0,            # mini-batches of 8, reshuffled each epoch
              optimizer=Adam(betas=(B1, B2), eps=EPS), update=update)
