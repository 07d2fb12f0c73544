"""Imported once by the local pool's fork server (`executors.pool_context`): the worker's IPython
shell made and warmed there (the package, matplotlib, seaborn, statsmodels imported; the data
readers memoised), so that every worker forked from it starts warm instead of importing and
warming all of that again, one worker after another. Importing it anywhere else does the same
warm-up in that process."""

try:
    from evaluation.run.inprocess import _shell

    _shell()
except Exception:  # noqa: BLE001  a worker that finds no warm shell makes its own (and fails there)
    pass
