"""One line for every failure the command line expects: the message and the exit code.

Every error aevb raises on purpose already says what failed and what to do; the operating system's
and the accelerator runtime's errors are put into such a line here, naming the file or the settings.
"""

import errno

from . import datasets, parallel, rundir, train, writer

HINTS = {
    errno.EACCES: "check its permissions or choose another --runs-dir",
    errno.EPERM: "check its permissions or choose another --runs-dir",
    errno.EROFS: "choose another --runs-dir",
    errno.ENOSPC: "the disk is full: free some space and run the command again",
    errno.EDQUOT: "the disk quota is used up: free some space and run the command again",
    errno.EFBIG: "the file may not grow this large here (see ulimit -f)",
    errno.ENAMETOOLONG: "choose a shorter --name or --runs-dir",
}
OUT_OF_MEMORY = ("out of memory: choose smaller settings (--hidden-dim, --batch-size, --samples, -k) or a machine "
                 "with more memory")


def one_line(error):
    """(message, exit code) for an error the command reports in one line; (None, None) otherwise."""
    if isinstance(error, (datasets.DataError, rundir.CheckpointError, writer.RunBusy, train.TrainingDiverged,
                          parallel.ProcessesError)):
        return str(error), 1
    if isinstance(error, train.Interrupted):
        return str(error), 130
    if isinstance(error, KeyboardInterrupt):
        return "interrupted", 130
    if isinstance(error, BrokenPipeError):
        return "the output was closed early (broken pipe); what was done before that is saved", 1
    if isinstance(error, OSError):
        where = f"{error.filename}: " if error.filename else ""
        return f"{where}{error.strerror or error}; {HINTS.get(error.errno, 'nothing was left half-written')}", 1
    if parallel.peers_lost(error):  # a collective failed outside training: another process has stopped
        return f"another process of the job stopped ({parallel.first_line(error)}); what process 0 saved is kept", 1
    if isinstance(error, MemoryError) or "RESOURCE_EXHAUSTED" in str(error) or "Out of memory" in str(error):
        return OUT_OF_MEMORY, 1
    return None, None
