"""A model file that fails while it is imported."""

import numpy as np

x = np.ones((3, 2))
y = np.ones((4, 1))
w = np.linalg.inv(np.zeros((2, 2)))                       # raises LinAlgError: Singular matrix
