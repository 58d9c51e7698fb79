"""Fashion-MNIST's source: Debian's package ``dataset-fashion-mnist``, fetched with ``apt-get download``
and unpacked with ``dpkg-deb -x`` into a temporary folder (never installed, no root needed)."""

import subprocess
import tempfile
from pathlib import Path

from ..errors import DataError
from . import idx


def _run(*command, cwd):
    try:
        done = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=600)
    except FileNotFoundError:
        raise DataError(f"{command[0]} is not available (a Debian or Ubuntu system has it)") from None
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no message"])[-1]
        hint = " (apt's package lists may be empty: run sudo apt-get update)" if "locate" in last else ""
        raise DataError(f"{' '.join(command)} failed: {last}{hint}")


def package_arrays(dataset, package, folder):
    """The arrays in Debian's package: apt-get download (no root) into a temporary folder, then unpack."""
    with tempfile.TemporaryDirectory(prefix="aevb-deb-") as tmp:
        _run("apt-get", "download", package, cwd=tmp)
        return unpack(dataset, next(Path(tmp).glob(f"{package}_*.deb")), folder)


def unpack(dataset, deb, folder):
    """The arrays in the .deb file deb: dpkg-deb -x into a temporary folder, then the IDX files under
    folder, checked like any local files (SHA-256 of their content). Raises DataError where it holds none."""
    with tempfile.TemporaryDirectory(prefix="aevb-deb-") as tmp:
        _run("dpkg-deb", "-x", str(Path(deb).resolve()), "unpacked", cwd=tmp)
        arrays = idx.read_folder(dataset, Path(tmp) / "unpacked" / folder)
        if arrays is None:
            raise DataError(f"{Path(deb).name} holds no IDX files under /{folder}")
        return arrays
