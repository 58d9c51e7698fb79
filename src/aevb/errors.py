"""Every error aevb raises on purpose, and one line for every failure the command line expects.

The floor of the house: it imports nothing of aevb, so every layer raises its errors from here
and the command line (aevb.cli) maps them to one line and an exit code (`one_line`). Each
message already says what failed and what to do; the operating system's and the accelerator
runtime's errors are put into such a line here, naming the file or the settings.
"""

import errno
import os

import jax


class ConfigError(ValueError):
    """A setting is out of range or unknown; the command line reports it as a usage error."""


class DataError(RuntimeError):
    """The data could not be found, fetched or verified; the message says what to do."""


class ChecksumError(DataError):
    """A file's SHA-256 is not the expected one; the file is not used and not cached."""


class CheckpointError(RuntimeError):
    """A checkpoint is missing, damaged, or does not match what was asked for."""


class RecordError(CheckpointError):
    """A file aevb wrote and reads back (summary.json, group.json) holds a value of the wrong kind; the
    message names the file and the key."""


class RunBusy(RuntimeError):
    """Another process is writing the run."""


class TrainingDiverged(RuntimeError):
    """The loss or the parameters became NaN or inf."""


class Interrupted(RuntimeError):
    """Training was stopped at once (a second Ctrl-C or SIGTERM); the message says what was kept."""


def machine_memory():
    """Bytes of this machine's physical memory: what the up-front size checks compare with."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


class TooBig(MemoryError):
    """Settings whose memory, estimated before anything runs, exceeds the machine's; the message says how much."""


class ProcessesError(RuntimeError):
    """The processes of a job could not join, or process 0 stopped while the others waited on it."""


# What process 0 may meet while it decides for every process (aevb.parallel.Devices.agree).
DECIDING = (ConfigError, CheckpointError, RunBusy, DataError)

HINTS = {
    errno.EACCES: "check its permissions or choose another --runs-dir",
    errno.EPERM: "check its permissions or choose another --runs-dir",
    errno.EROFS: "choose another --runs-dir",
    errno.ENOSPC: "the disk is full: free some space and run the command again",
    errno.EDQUOT: "the disk quota is used up: free some space and run the command again",
    errno.EFBIG: "the file may not grow this large here (see ulimit -f)",
    errno.ENAMETOOLONG: "choose a shorter --name or --runs-dir",
    errno.ENOTDIR: "move that file away (the run writes a folder of that name), or choose another --name",
}
OUT_OF_MEMORY = ("out of memory: choose smaller settings (--hidden-dim, --batch-size, --samples, -k) or a machine "
                 "with more memory")


def first_line(error):
    """The first line of a runtime error's message (JAX's and gloo's run to many lines)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


# What the words of a failed collective contain (gloo's TCP pairs, the coordination service): JAX
# raises these as JaxRuntimeError from a compiled program, as ValueError from a transfer.
COLLECTIVE_FAILED = ("Gloo", "gloo", "heartbeat", "CoordinationService", "coordination service",
                     "Connection reset", "Connection closed", "UNAVAILABLE")


def peers_lost(error):
    """Whether error means the job's processes no longer run together (one could not join, or a
    collective failed because another stopped); JAX's exit would then wait minutes for it."""
    if isinstance(error, ProcessesError):
        return True
    if jax.process_count() == 1 or not isinstance(error, (RuntimeError, ValueError)):
        return False
    return isinstance(error, jax.errors.JaxRuntimeError) or any(word in str(error) for word in COLLECTIVE_FAILED)


def one_line(error):
    """(message, exit code) for an error the command reports in one line; (None, None) otherwise."""
    if isinstance(error, (DataError, CheckpointError, RunBusy, TrainingDiverged, ProcessesError)):
        return str(error), 1
    if isinstance(error, Interrupted):
        return str(error), 130
    if isinstance(error, KeyboardInterrupt):
        return "interrupted", 130
    if isinstance(error, BrokenPipeError):
        return "the output was closed early (broken pipe); what was done before that is saved", 1
    if isinstance(error, OSError):
        where = f"{error.filename}: " if error.filename else ""
        return f"{where}{error.strerror or error}; {HINTS.get(error.errno, 'nothing was left half-written')}", 1
    if peers_lost(error):  # a collective failed outside training: another process has stopped
        return f"another process of the job stopped ({first_line(error)}); what process 0 saved is kept", 1
    if isinstance(error, TooBig):
        return f"out of memory: {error}", 1
    if isinstance(error, MemoryError) or "RESOURCE_EXHAUSTED" in str(error) or "Out of memory" in str(error):
        return OUT_OF_MEMORY, 1
    return None, None
