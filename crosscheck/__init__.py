"""backprop-crosscheck: hand-written backpropagation checked step by step against autograd."""

from crosscheck.blas import select_document_kernel

select_document_kernel()  # before anything imports NumPy

__version__ = "0.1.0"
