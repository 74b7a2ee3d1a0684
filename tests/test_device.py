import pytest
import torch

from sgdbayes.device import get_device
from sgdbayes.seed import make_generator, spawn_seeds


def test_auto_is_cuda_when_available_else_cpu(monkeypatch):
    monkeypatch.delenv("SGDBAYES_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert get_device("auto").type == expected
    assert get_device(None).type == expected


def test_env_override(monkeypatch):
    monkeypatch.setenv("SGDBAYES_DEVICE", "cpu")
    assert get_device("auto") == torch.device("cpu")


def test_explicit_device_beats_env(monkeypatch):
    monkeypatch.setenv("SGDBAYES_DEVICE", "cpu")
    assert get_device(torch.device("cpu")).type == "cpu"


@pytest.mark.parametrize("bad", ["gpu", "tpu:0", "banana"])
def test_bad_env_value_is_an_error_naming_it(monkeypatch, bad):
    monkeypatch.setenv("SGDBAYES_DEVICE", bad)
    with pytest.raises(ValueError, match="SGDBAYES_DEVICE"):
        get_device("auto")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_requested_without_cuda_is_an_error():
    with pytest.raises(ValueError, match="CUDA is not available"):
        get_device("cuda")


def test_generator_reproducible():
    a = torch.randn(5, generator=make_generator(3))
    b = torch.randn(5, generator=make_generator(3))
    c = torch.randn(5, generator=make_generator(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("bad", [-1, 1.5, "7", True])
def test_bad_seed(bad):
    with pytest.raises((TypeError, ValueError)):
        make_generator(bad)


def test_spawn_seeds_independent_and_prefix_stable():
    seeds = spawn_seeds(0, 100)
    assert len(set(seeds)) == 100
    assert spawn_seeds(0, 10) == seeds[:10]  # shard k's seed does not depend on how many shards there are
    assert spawn_seeds(1, 10) != seeds[:10]
    assert all(0 <= s < 2**63 for s in seeds)


def test_torch_threads_sets_and_restores():
    import torch

    from sgdbayes.device import torch_threads

    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError):
        with torch_threads(1):
            raise RuntimeError("inside")
    assert torch.get_num_threads() == before
    with pytest.raises(ValueError, match="n must be"):
        with torch_threads(0):
            pass
