"""A user's own images: ``--dataset npz:PATH`` names a .npz file, read, checked and used as it is
(never cached)."""

import math
import zipfile
from pathlib import Path

import numpy as np

from ..errors import DataError, machine_memory

NPZ = "npz:"  # --dataset npz:PATH names a user's own images


MAX_CLASSES = 1000  # labels are class numbers 0..C-1: more is a mistake in the file
# Every label stored or serialized (the explorer's page among them) has this width: it holds MAX_CLASSES - 1.
LABEL_DTYPE = np.dtype("<u2")
assert np.iinfo(LABEL_DTYPE).max >= MAX_CLASSES - 1


KEYS = ("train_images", "images", "train_labels", "labels", "class_names", "test_images", "test_labels")


def _check_sizes(path):
    """Refuses an array the file declares larger than this machine's memory, from its .npy header
    alone (a few bytes can declare a terabyte), naming it and its shape."""
    memory = machine_memory()
    with zipfile.ZipFile(path) as archive:
        for info in archive.infolist():
            key = info.filename.removesuffix(".npy")
            if key not in KEYS:
                continue
            with archive.open(info) as f:
                version = np.lib.format.read_magic(f)
                read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                    np.lib.format.read_array_header_2_0
                shape, _, dtype = read_header(f)
            size = math.prod(shape) * dtype.itemsize
            if size > memory:
                raise DataError(f"{path}: {key} declares shape {shape} of {dtype} ({size / 2**30:.0f} GiB), more "
                                f"than this machine's {memory / 2**30:.0f} GiB of memory")


def read(path):
    """A user's own images: (absolute path, image shape, class names, flat arrays by role); aevb.data.datasets
    registers them as the dataset called "npz:<absolute path>".

    The .npz holds uint8 images (N, rows, columns), or (N, 784) for 28x28, under "train_images"
    (or "images"); optionally integer labels 0..C-1 under "train_labels" (or "labels"), the class
    names as strings under "class_names", and an official test set under "test_images" and
    "test_labels". Without labels every image is in one class, "all". Raises DataError in one line for a file that
    is not such an archive.
    """
    try:
        path = Path(path).expanduser().resolve()
        with open(path, "rb") as f:
            magic = f.read(6)
    except (OSError, RuntimeError) as error:  # RuntimeError: a symlink loop
        raise DataError(f"{path}: cannot open it ({getattr(error, 'strerror', None) or error})") from None
    if magic.startswith(b"\x93NUMPY"):
        raise DataError(f"{path}: holds one .npy array, not a .npz archive; save with np.savez(path, images=...)")
    if not magic.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        raise DataError(f"{path}: is not a .npz file (a zip archive of arrays, as np.savez writes it)")
    try:
        _check_sizes(path)
        with np.load(path, allow_pickle=False) as stored:
            arrays = {key: stored[key] for key in stored.files if key in KEYS}  # the others are never unpacked
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise DataError(f"{path}: cannot read it as a .npz file ({error})") from None

    def take(role, alias):
        return arrays.get(role, arrays.get(alias))

    images, labels = take("train_images", "images"), take("train_labels", "labels")
    if images is None:
        raise DataError(f"{path}: no array called train_images or images (it holds {', '.join(arrays) or 'none'})")
    if images.ndim == 0:
        raise DataError(f"{path}: images must have shape (N, rows, columns), e.g. (N, 28, 28), not a single number")
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
    if n_classes > MAX_CLASSES:  # one stray label would make millions of empty classes (and figures)
        raise DataError(f"{path}: the labels go up to {n_classes - 1}; they must be 0..C-1 for C classes, "
                        f"at most {MAX_CLASSES}")
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
        flat[role] = np.zeros(size, LABEL_DTYPE) if y is None else y.astype(LABEL_DTYPE)
    return path, image_shape, tuple(str(c) for c in class_names), flat

