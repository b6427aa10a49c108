"""The backward forgets the bias gradient."""

from _linear import dL_dpred, forward, init, loss, x, y

from crosscheck import Model


def backward(p, x, y):
    return {"W": x.T @ dL_dpred(p, x, y)}


model = Model(name="missing_grad", x=x, y=y, init=init, forward=forward, loss=loss, backward=backward, lr=0.1,
              epochs=5)
