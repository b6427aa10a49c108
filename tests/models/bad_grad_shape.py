"""The bias is (1, 3); its gradient is summed without keepdims, so it is (3,): never broadcast."""

from _linear import dL_dpred, forward, init, loss, x, y

from crosscheck import Model


def backward(p, x, y):
    d = dL_dpred(p, x, y)
    return {"W": x.T @ d, "b": d.sum(axis=0)}


model = Model(name="bad_grad_shape", x=x, y=y, init=init, forward=forward, loss=loss,
              backward=backward, lr=0.1, epochs=5)
