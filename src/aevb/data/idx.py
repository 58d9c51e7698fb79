"""IDX files, the format MNIST and Fashion-MNIST ship in: parse, write, verify by SHA-256, read
from a folder or download from a mirror.

Every source of a table dataset gives the same bytes, checked against the SHA-256 of its
standard uncompressed IDX files (``verify_arrays``), so the arrays a user trains on do not
depend on where they came from.
"""

import gzip
import hashlib
import struct
import urllib.request

import numpy as np

from ..errors import ChecksumError, DataError

DOWNLOAD_TIMEOUT = 10.0  # seconds per request: an unreachable mirror must not stall a run


def sha256(data):
    """The SHA-256 of bytes data, as hex."""
    return hashlib.sha256(data).hexdigest()


def verify(data, expected, name):
    """Returns data if its SHA-256 is expected; otherwise raises ChecksumError naming both.
    data: bytes; expected: a SHA-256 in hex; name: the file's, for the message."""
    actual = sha256(data)
    if actual != expected:
        raise ChecksumError(f"{name}: SHA-256 {actual} does not match the expected {expected}; file refused")
    return data



def parse_idx(raw, name):
    """The array in an uncompressed IDX file of unsigned bytes, header checked: images come out
    flat (N, rows * columns), labels (N,).
    raw: the file's bytes; name: the file's name, for errors. Raises DataError naming it when the header, the type
    or the length is wrong."""
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


def read_folder(dataset, folder):
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



def download(dataset, mirror):
    """The arrays of a Dataset's IDX files from mirror (a URL ending in /), each checked by its SHA-256; raises what
    urllib raises, and DataError for damaged bytes (verify)."""
    arrays = {}
    for role, (name, gz_hash, raw_hash) in dataset.files.items():
        url = mirror + name + ".gz"
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as response:
            packed = response.read()
        arrays[role] = parse_idx(verify(gzip.decompress(verify(packed, gz_hash, url)), raw_hash, name), name)
    return arrays
