"""Notebooks run in the worker's own IPython shell (`run.inprocess`) come out as a kernel
executes them: the same outputs cell by cell, errors naming the cell, a stuck cell stopped."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from evaluation.run.inprocess import InProcessSession
from evaluation.run.pipeline import KernelSession, PipelineError

CELLS = [
    new_code_cell("# Parameters\nvalue = 1", metadata={"tags": ["parameters"]}),
    new_code_cell("import sys, warnings\nprint('one')\nprint('two')\n"
                  "print('to stderr', file=sys.stderr)\nvalue * 2"),
    new_markdown_cell("text between"),
    new_code_cell(""),
    new_code_cell("from IPython.display import Markdown, display\n"
                  "display(Markdown(f'**{value}**'), metadata={'note': 'kept'})\n"
                  "import pandas as pd\npd.DataFrame({'a': [1, 2]})"),
    new_code_cell("import matplotlib.pyplot as plt\nfig, ax = plt.subplots()\nax.plot([1, 2, 3])\n"
                  "display(fig)\nplt.close(fig)"),
    new_code_cell("warnings.warn('careful', UserWarning)\nimport os\nos.getcwd()"),
]


def _notebook(path: Path, *cells) -> Path:
    nb = new_notebook(cells=list(cells) or [c.copy() for c in CELLS])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, path)
    return path


def _outputs(path: Path) -> list:
    return [(c.get("execution_count"), c.get("outputs")) for c in nbformat.read(path, 4).cells]


def test_outputs_equal_those_of_a_kernel(tmp_path):
    source = _notebook(tmp_path / "nb.ipynb")
    runs = {}
    for name, session in (("kernel", KernelSession(warm=False)), ("inprocess", InProcessSession())):
        cwd = tmp_path / name
        cwd.mkdir()
        with session:
            session.execute(source, cwd / "out.ipynb", {"value": 21}, cwd)
        runs[name] = _outputs(cwd / "out.ipynb")
        if name == "inprocess":
            assert os.getcwd() != str(cwd)  # the worker's own directory back
    kernel, inprocess = runs["kernel"], runs["inprocess"]
    # the cwd each printed differs by design,
    # and so does the name a kernel gives the cell's code in a warning (a temporary file)
    for cell in (kernel[-1][1], inprocess[-1][1]):
        cell[-1]["data"]["text/plain"] = "cwd"
        cell[0]["text"] = cell[0]["text"].split(":", 1)[1]
    assert inprocess == kernel  # everything else is the same, cell by cell
    counts = [c for c, _ in inprocess]
    assert counts == [1, 2, 3, None, None, 4, 5, 6]  # after the parameters: the injected ones
    printed = inprocess[2][1]  # an empty cell is not run
    assert printed[0] == {"output_type": "stream", "name": "stdout", "text": "one\ntwo\n"}
    assert printed[-1]["data"]["text/plain"] == "42"
    assert any(o.get("name") == "stderr" and "careful" in o["text"] for o in inprocess[-1][1])
    assert "image/png" in inprocess[-2][1][0]["data"]


def test_a_failing_cell_is_named_and_the_notebook_kept(tmp_path):
    source = _notebook(tmp_path / "nb.ipynb", new_code_cell("x = 1"), new_code_cell("1 / 0"),
                       new_code_cell("never = True"))
    target = tmp_path / "out.ipynb"
    with InProcessSession() as session, pytest.raises(PipelineError) as err:
        session.execute(source, target, {}, tmp_path)
    # cell 1: the injected parameters (the notebook has no parameters cell)
    assert "nb.ipynb failed in cell 3 (ZeroDivisionError: division by zero)" in str(err.value)
    cells = nbformat.read(target, 4).cells
    assert cells[2].outputs[0]["output_type"] == "error"
    assert cells[3].get("execution_count") is None and not cells[3].outputs


def test_each_notebook_starts_from_an_empty_namespace(tmp_path):
    first = _notebook(tmp_path / "a.ipynb", new_code_cell("leftover = 1"))
    second = _notebook(tmp_path / "b.ipynb", new_code_cell("leftover"))
    with InProcessSession() as session:
        session.execute(first, tmp_path / "a-out.ipynb", {}, tmp_path)
        with pytest.raises(PipelineError, match="NameError"):
            session.execute(second, tmp_path / "b-out.ipynb", {}, tmp_path)


def test_a_stuck_cell_is_stopped_at_the_timeout(tmp_path):
    source = _notebook(tmp_path / "nb.ipynb",
                       new_code_cell("import time\ntry:\n    time.sleep(30)\n"
                                     "except Exception:\n    pass"))
    with InProcessSession(timeout=1) as session, pytest.raises(PipelineError) as err:
        session.execute(source, tmp_path / "out.ipynb", {}, tmp_path)
    assert "ran longer than 1 s" in str(err.value)


def test_notebooks_here_get_the_frames_the_estimates_were_computed_from(synthetic_dir, tmp_path,
                                                                       monkeypatch):
    """In a worker the notebooks receive the estimate frames from memory instead of rebuilding
    them from the estimates file: what they receive equals the rebuilt frames."""
    import pandas as pd

    from evaluation.analysis import estimates
    from evaluation.params import DEFAULT_PARAMS_DIR, load_params
    from evaluation.run import memo
    from evaluation.run.pipeline import cached_report_data, compute_estimates

    params = load_params("lekstroom", "2014-2015", municipality="houten")
    tables = cached_report_data(synthetic_dir, params).tables
    monkeypatch.setattr(memo, "_in_use", True)
    memo._MEMO.clear()
    path = compute_estimates(tmp_path, params, tables, DEFAULT_PARAMS_DIR)
    remembered = memo._MEMO[memo.estimates_key(path, params, DEFAULT_PARAMS_DIR)]
    rebuilt = estimates.load_estimates(path, tables, params, DEFAULT_PARAMS_DIR)
    pd.testing.assert_frame_equal(remembered.table, rebuilt.table)
    pd.testing.assert_frame_equal(remembered.design, rebuilt.design)
    assert remembered.years == rebuilt.years and list(remembered.data) == list(rebuilt.data)
    for name, frame in rebuilt.data.items():
        pd.testing.assert_frame_equal(remembered.data[name], frame)
        assert remembered.data[name].attrs == frame.attrs
    memo._MEMO.clear()


def test_the_host_process_keeps_its_own_main_module(tmp_path):
    """IPython makes its namespace __main__; outside a notebook the host's is back (a spawned
    process, for one, is prepared from it)."""
    import multiprocessing
    import sys

    main = sys.modules["__main__"]
    source = _notebook(tmp_path / "nb.ipynb", new_code_cell("x = 1"))
    with InProcessSession() as session:
        session.execute(source, tmp_path / "out.ipynb", {}, tmp_path)
    assert sys.modules["__main__"] is main
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        assert pool.apply(abs, (-3,)) == 3
