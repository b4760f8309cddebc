"""kdzoo's pytest plugin: fixtures for kdzoo's own tests and a plugin's.

Installing kdzoo registers it with pytest (the ``pytest11`` entry point ``kdzoo.pytest_fixtures``), so a
test suite gets the fixtures with no ``conftest.py``. It changes nothing until asked:

``zoo``
    every installed plugin, loaded once per session.
``kdzoo_isolated``
    teachers, teacher outputs and the run index go to a per-session folder, never the user's cache;
    one CPU thread keeps tiny-model tests fast and repeatable. A test asks for it by name, or a suite
    gives it to every test with ``kdzoo_isolate = true`` in its pytest configuration (kdzoo's own
    suite and the in-repo plugins do)::

        [tool.pytest.ini_options]
        kdzoo_isolate = true
``kdzoo_env``
    the environment for a kdzoo subprocess (a drill of :mod:`kdzoo.testing`) with the same per-session
    cache and run index; session-scoped, so a module- or session-scoped fixture (a reference run shared
    by a module's tests) can use it. A teacher a subprocess trains is then trained once per session.
"""

from __future__ import annotations

import os

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini("kdzoo_isolate", "give every test kdzoo's isolated cache and run index, and one CPU thread "
                  "(the kdzoo_isolated fixture)", type="bool", default=False)


def pytest_configure(config: pytest.Config) -> None:
    if config.getini("kdzoo_isolate"):  # before a test module imports torch: OpenMP reads it once
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _isolated_paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    base = tmp_path_factory.getbasetemp()
    return {"KDZOO_CACHE": str(base / "kdzoo-cache"), "KDZOO_INDEX": str(base / "kdzoo-index.sqlite")}


@pytest.fixture
def kdzoo_isolated(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Teachers, teacher outputs and the run index go to a per-session folder, never the user's
    cache; one CPU thread keeps tiny-model tests fast and repeatable."""
    for name, value in _isolated_paths(tmp_path_factory).items():
        monkeypatch.setenv(name, value)
    import torch  # here, not at the top: a suite that never asks for isolation never imports torch

    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _kdzoo_isolate_every_test(request: pytest.FixtureRequest) -> None:
    if request.config.getini("kdzoo_isolate"):
        request.getfixturevalue("kdzoo_isolated")


@pytest.fixture(scope="session")
def kdzoo_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment for a kdzoo subprocess: the per-session cache and run index of ``kdzoo_isolated``,
    and OpenMP threads that sleep when idle (a busy-waiting one steals the CPU from the other process)."""
    return {**os.environ, **_isolated_paths(tmp_path_factory), "OMP_WAIT_POLICY": "PASSIVE"}


@pytest.fixture(scope="session")
def zoo():
    """Every installed plugin, loaded once per session."""
    from kdzoo.zoo.plugins import load_zoo  # lazy: start-up cost: this pytest plugin loads in every pytest session

    return load_zoo()
