"""`python tests/synthetic_aevb.py ARGS...`: the aevb command with the tests' synthetic dataset
registered, so that tests can run aevb in a real process (signals, exit codes) with no download.

AEVB_TEST_READ_ONLY=FOLDER: an audit hook ends the process (exit 97, naming the file) the moment it
opens a file for writing, creates, renames or removes anything under FOLDER, so a test can require
that a process (say process 1 of two) writes nothing there."""

import os
import sys
from pathlib import Path

WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
WRITING_EVENTS = {"os.rename": 2, "os.replace": 2, "os.mkdir": 1, "os.remove": 1, "os.rmdir": 1, "shutil.rmtree": 1,
                  "os.truncate": 1, "os.chmod": 1}  # event -> how many leading arguments are paths


def _refuse_writes_under(folder):
    folder = os.path.realpath(folder)

    def inside(path):
        return isinstance(path, (str, bytes, os.PathLike)) and os.path.realpath(os.fsdecode(path)).startswith(folder)

    def hook(event, args):
        if event == "open":
            path, mode, flags = args
            writing = (mode is not None and any(c in str(mode) for c in "wax+")) or (
                mode is None and isinstance(flags, int) and flags & WRITE_FLAGS)
            paths = [path] if writing else []
        else:
            paths = args[: WRITING_EVENTS.get(event, 0)]
        for path in paths:
            if inside(path):
                os.write(2, f"aevb-test: this process wrote under {folder}: {event} {os.fsdecode(path)}\n".encode())
                os._exit(97)

    sys.addaudithook(hook)


if os.environ.get("AEVB_TEST_READ_ONLY"):
    _refuse_writes_under(os.environ["AEVB_TEST_READ_ONLY"])

sys.path.insert(0, str(Path(__file__).parent))
import conftest  # noqa: E402,F401  (registers the synthetic dataset)
import jax  # noqa: E402

jax.config.update("jax_num_cpu_devices", -1)  # one CPU device, as a user's process has (conftest sets two)
from aevb import cli  # noqa: E402

sys.exit(cli.main(sys.argv[1:]))
