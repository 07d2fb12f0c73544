"""One BLAS thread while the analysis runs its many small model fits.

A report's models are hundreds of small least-squares and GLM fits (jackknife refits, event-study
cells, randomisation reassignments). A multi-threaded BLAS spends more time waking its threads
than computing on matrices this size, and on a machine that already runs other reports (the
batch, CI) the threads fight over the cores: measured on a busy 2-core machine, a municipality's
estimates took 18.3 s with OpenBLAS's default threads and 5.8 s with one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Limit BLAS to one thread inside the block (threadpoolctl), restoring it afterwards."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # a minimal install: BLAS runs as configured
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield
