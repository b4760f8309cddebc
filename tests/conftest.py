import os

import pytest

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Teachers trained by tests are cached per session, never in the user's cache."""
    monkeypatch.setenv("KDZOO_CACHE", str(tmp_path_factory.getbasetemp() / "kdzoo-cache"))
    import torch

    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def zoo():
    from kdzoo.plugins import load_zoo

    return load_zoo()
