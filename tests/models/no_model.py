"""A file that defines functions but no crosscheck.Model."""

import numpy as np


def forward(xp, p, x):
    return x @ p["w"]


init = {"w": np.zeros((2, 1))}
