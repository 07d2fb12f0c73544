"""The local pool's workers: forked warm from a fork server, yet running in the environment of
the run that starts them (not the server's, which may have started earlier)."""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor

import pytest

from evaluation.run import executors
from evaluation.run.inprocess import shell_ready


@pytest.fixture
def forkserver():
    context = executors.pool_context()
    if context.get_start_method() != "forkserver":
        pytest.skip("no fork server on this platform: the pool spawns its workers")
    return context


def test_workers_take_the_environment_of_the_run(forkserver, monkeypatch):
    executors.start_pool_server()
    monkeypatch.setenv("EVALUATION_TEST_MARK", "set after the fork server started")
    monkeypatch.delenv("EVALUATION_NOTEBOOKS", raising=False)
    with ProcessPoolExecutor(1, mp_context=forkserver, initializer=executors._init_worker,
                             initargs=(None, dict(os.environ), True)) as pool:
        assert pool.submit(os.getenv, "EVALUATION_TEST_MARK").result() == (
            "set after the fork server started")
        # The shell was made and warmed in the server, not in the worker.
        assert pool.submit(shell_ready).result()


def test_a_run_without_the_fork_server_spawns(monkeypatch):
    monkeypatch.setenv("EVALUATION_FORKSERVER", "0")
    assert executors.pool_context().get_start_method() == "spawn"
