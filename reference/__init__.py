"""NumPy reference models: the documents' programs, operation by operation.

One module per document program. Each module's docstring names its document
and cell and lists the quirks found in it; its functions keep the document's
names and lines so the two can be read side by side. Every module offers:

* ``DOCUMENT``, ``CELL``: where the program comes from;
* ``GRADS``: parameter name -> the document's name for its gradient;
* ``problem(...)``: data, the seeded initial draw and hyper-parameters, with ``forward_xp``
  (the forward once for NumPy, torch and JAX) and the loss;
* ``gradient(params, hyper, sample)``: the document's own forward, loss and backward at
  given parameters;
* ``run(lr=..., epochs=...) -> Trajectory``: the document's training run, recorded;
* ``transcript(traj) -> str``: the run printed in the document's own format;
* ``CASE``: the :class:`crosscheck.declaring.cases.Case` declaring all of the above, which is all the
  registry reads. A new document program is one new module here.
"""

import crosscheck  # noqa: F401  (selects the document's BLAS kernel before NumPy loads)
