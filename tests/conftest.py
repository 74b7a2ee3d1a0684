"""Shared test settings: results and caches go to temporary directories, never into the work tree's _build/."""

import pytest
import torch
from hypothesis import settings

# Deterministic property tests without wall-clock deadlines: CI machines are small and may be busy.
settings.register_profile("sgdbayes", deadline=None, derandomize=True)
settings.load_profile("sgdbayes")


@pytest.fixture(autouse=True)
def _isolated_outputs(tmp_path_factory, monkeypatch):
    base = tmp_path_factory.getbasetemp()
    monkeypatch.setenv("SGDBAYES_RESULTS_DIR", str(base / "results"))
    monkeypatch.setenv("SGDBAYES_CACHE_DIR", str(base / "cache"))
    monkeypatch.setenv("SGDBAYES_DATA_DIR", str(base / "data"))


@pytest.fixture
def one_thread():
    """Run a test with one torch thread (tiny tensors: thread start-up dominates), restoring the count after."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
