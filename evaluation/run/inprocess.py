"""Notebooks executed by an IPython shell inside the worker process itself.

A batch worker already holds everything a report's notebooks need: the package and its
libraries imported, the validated data, the report's estimates. A separate kernel (papermill's
way, and `pipeline.KernelSession`) imports and reads all of that a second time per worker and
receives every output over ZeroMQ; here the notebook's cells run in the worker's own IPython
shell and their outputs are collected as the kernel protocol would deliver them (streams,
display data, execute results, errors), so the executed notebook looks the same to the
renderers. The namespace is reset before each notebook, as in the warm kernel.

A cell that runs longer than `timeout` is interrupted (SIGALRM, as a kernel is interrupted by
SIGINT) where the worker runs in its main thread.
"""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import sys
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from evaluation.run.pipeline import CELL_TIMEOUT, PipelineError


class CellTimeout(BaseException):
    """Raised inside a cell that ran past the timeout (a BaseException: `except Exception` in
    the cell must not swallow it)."""


class _Outputs:
    """The outputs of the cell being executed, in nbformat's shape."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def stream(self, name: str, text: str) -> None:
        if not text:
            return
        last = self.items[-1] if self.items else None
        if last is not None and last["output_type"] == "stream" and last["name"] == name:
            last["text"] += text  # as the front end merges consecutive writes
        else:
            self.items.append({"output_type": "stream", "name": name, "text": text})


class _Stream:
    """sys.stdout / sys.stderr of a cell: text goes to the cell's outputs."""

    def __init__(self, outputs: _Outputs, name: str) -> None:
        self._outputs, self.name = outputs, name
        self.encoding = "utf-8"

    def write(self, text: str) -> int:
        self._outputs.stream(self.name, str(text))
        return len(text)

    def writelines(self, lines: list[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False


_OUTPUTS = _Outputs()  # the cell being executed (one at a time per process)


@functools.cache
def _shell():
    """The process's IPython shell (IPython's singleton), made once: its display publisher,
    display hook and tracebacks send outputs to `_OUTPUTS`; figures as an inline kernel shows
    them. The package is imported and its data readers memoised (`warm_kernel`)."""
    from evaluation.run.pipeline import warm_kernel

    outputs = _OUTPUTS
    from IPython.core.displayhook import DisplayHook
    from IPython.core.displaypub import DisplayPublisher
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    class Publisher(DisplayPublisher):
        def publish(self, data, metadata=None, source=None, *, transient=None, update=False,
                    **kwargs) -> None:
            outputs.items.append({"output_type": "display_data", "data": data,
                                  "metadata": metadata or {}})

        def clear_output(self, wait: bool = False) -> None:
            outputs.items.clear()

    class Hook(DisplayHook):
        def write_output_prompt(self) -> None:
            pass

        def write_format_data(self, format_dict, md_dict=None) -> None:
            outputs.items.append({"output_type": "execute_result", "data": format_dict,
                                  "metadata": md_dict or {},
                                  "execution_count": self.prompt_count})

        def finish_displayhook(self) -> None:
            pass

        def flush(self) -> None:
            # What `reset` runs before every notebook. IPython's version ends in a full
            # gc.collect (0.03 s a notebook over a worker's heap); reset clears the namespaces
            # itself, and cyclic garbage goes at the next automatic collection.
            cache = self.shell.user_ns.get("_oh")
            if cache is not None:
                cache.clear()
            self._, self.__, self.___ = "", "", ""

    class Shell(InteractiveShell):
        def enable_gui(self, gui=None) -> None:  # inline figures need no event loop
            pass

        def _showtraceback(self, etype, evalue, stb) -> None:
            outputs.items.append({"output_type": "error", "ename": etype.__name__,
                                  "evalue": str(evalue), "traceback": list(stb)})

    config = Config()
    config.HistoryManager.hist_file = ":memory:"  # no SQLite file shared between workers
    host_main = sys.modules.get("__main__")
    shell = Shell.instance(config=config, display_pub_class=Publisher, displayhook_class=Hook,
                           colors="nocolor")
    # IPython made its namespace this process's __main__: only while a notebook runs (as in a
    # kernel); otherwise the host's own (multiprocessing's spawn, for one, reads it).
    sys.modules["__main__"] = host_main
    shell.enable_matplotlib("inline")
    warm_kernel()
    return shell


def shell_ready() -> bool:
    """Whether this process has its shell made and warmed already (a worker forked from the
    pool's fork server has)."""
    return _shell.cache_info().currsize > 0


@contextlib.contextmanager
def _deadline(seconds: int) -> Iterator[None]:
    """Interrupt the code inside after `seconds` (main thread only: elsewhere no limit)."""
    if threading.current_thread() is not threading.main_thread() or not seconds:
        yield
        return

    def interrupt(_signum: int, _frame: object) -> None:
        raise CellTimeout(f"the cell ran longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class InProcessSession:
    """The `KernelSession` interface (start, execute, close) with the notebooks run in this
    process: for batch workers, which hold the imports and the data already."""

    in_process = True  # build_report may start work ahead in a child (`ahead`)

    def __init__(self, timeout: int = CELL_TIMEOUT) -> None:
        self.timeout = timeout
        self._outputs = _OUTPUTS
        self._shell = None

    def __enter__(self) -> InProcessSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def started(self) -> bool:
        return self._shell is not None

    def start(self, wait: bool = True) -> None:  # noqa: ARG002  nothing runs beside it
        self._shell = _shell()

    def execute(self, source: Path, target: Path, parameters: dict[str, Any], cwd: Path) -> Path:
        """Execute `source` with `parameters` in `cwd`, write it to `target`; on a failing cell
        the notebook with the error is still written, and PipelineError names the cell."""
        import matplotlib
        import matplotlib.pyplot as plt
        import nbformat
        from papermill.iorw import load_notebook_node
        from papermill.parameterize import parameterize_notebook

        nb = parameterize_notebook(load_notebook_node(str(source)), parameters,
                                   kernel_name="python3", language="python")
        if self._shell is None:
            self.start()
        shell = self._shell
        here, host_main = os.getcwd(), sys.modules.get("__main__")
        os.chdir(cwd)
        try:
            shell.reset(new_session=True)
            sys.modules["__main__"] = shell.user_module
            plt.close("all")
            matplotlib.rcdefaults()  # the settings a fresh kernel starts from
            nb.metadata["language_info"] = _language_info()
            for cell in nb.cells:
                if cell.cell_type != "code":
                    continue
                cell.outputs, cell.execution_count = [], None
                if not cell.source.strip():
                    continue
                failed = self._run(cell)
                if failed is not None:
                    nbformat.write(nb, target)
                    raise PipelineError(
                        f"notebook {source.name} failed in cell {cell.execution_count} "
                        f"({failed}); the executed notebook with the error is {target}")
        finally:
            os.chdir(here)
            sys.modules["__main__"] = host_main
            plt.close("all")
        nbformat.write(nb, target)
        return target

    def _run(self, cell: Any) -> str | None:
        """Run one cell into its outputs; the error ("Name: value") if it failed."""
        import nbformat

        shell, outputs = self._shell, self._outputs
        outputs.items.clear()
        cell.execution_count = shell.execution_count
        stdout, stderr = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = _Stream(outputs, "stdout"), _Stream(outputs, "stderr")
        try:
            with _deadline(self.timeout), warnings.catch_warnings():
                warnings.showwarning = _warning_in_cell  # not the worker's warnings log
                result = shell.run_cell(cell.source, store_history=True)
        except CellTimeout as exc:  # raised outside the cell's own code (between its lines)
            outputs.items.append({"output_type": "error", "ename": "CellTimeout",
                                  "evalue": str(exc), "traceback": [str(exc)]})
            result = None
        finally:
            sys.stdout, sys.stderr = stdout, stderr
        cell.outputs = [nbformat.from_dict(o) for o in outputs.items]
        outputs.items.clear()
        error = None if result is None else (result.error_before_exec or result.error_in_exec)
        if result is None or error is not None:
            last = next((o for o in reversed(cell.outputs) if o.output_type == "error"), None)
            if last is not None:
                return f"{last.ename}: {last.evalue}"
            return f"{type(error).__name__}: {error}"
        return None

    def close(self) -> None:
        from evaluation.run import ahead

        ahead.discard()
        self._shell = None  # the shell is the process's singleton: kept for the next session


def _warning_in_cell(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                     file: Any = None, line: str | None = None) -> None:
    """A warning a cell raises goes to the cell's stderr, as in a kernel."""
    sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def _language_info() -> dict[str, Any]:
    """What an IPython kernel reports about its language (the notebook's metadata)."""
    return {"name": "python", "version": sys.version.split()[0], "mimetype": "text/x-python",
            "codemirror_mode": {"name": "ipython", "version": sys.version_info[0]},
            "pygments_lexer": f"ipython{sys.version_info[0]}", "nbconvert_exporter": "python",
            "file_extension": ".py"}
