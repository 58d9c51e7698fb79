"""One writer per run directory, and repair after a crash.

A process that writes a run holds an fcntl lock on its .lock file for as long as it writes; the
OS releases the lock when the process ends, kill -9 included, so it is never left stuck. Whoever
takes the lock next first repairs what a crash can leave behind (``_recover``): temp files of
writes that were cut short, a torn last line of metrics.jsonl, a damaged summary.json, a
half-done --overwrite. Nothing here decides what to train (aevb.runs.checkpoint.resolve does);
`hold` takes the locks of the runs a command will write once their settings are checked.
"""

import contextlib
import errno
import fcntl
import os
import shutil
import tempfile
from pathlib import Path

from ..errors import CheckpointError, RunBusy
from . import checkpoint, files, records, tensorboard

_HELD = {}  # real path of a run directory -> how many nested `writing` blocks of this process hold it


@contextlib.contextmanager
def writing(run_dir, command, wait=False):
    """Holds run_dir's writer lock for the block (re-entrant within a process).

    wait=False: if another process holds it, raise RunBusy naming its PID and command.
    wait=True: say who holds it and wait until it is done (readers of a run being trained).
    On taking the lock: checks that the folder is writable, then repairs what a crash left.
    """
    run_dir = Path(run_dir)
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    key = files.identity(run_dir)
    if key in _HELD:
        _HELD[key] += 1
        try:
            yield
        finally:
            _HELD[key] -= 1
        return
    fd = os.open(run_dir / files.LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            if not wait:
                raise RunBusy(f"{run_dir} is being written by process {holder}; wait for it to end, or stop it "
                              "(its checkpoint stays)") from None
            files.warn(f"{run_dir} is being written by process {holder}; waiting for it to end "
                        "(Ctrl-C stops waiting)")
            fcntl.flock(fd, fcntl.LOCK_EX)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} ({command})\n".encode(), 0)
        _probe(run_dir)
        _recover(run_dir)
        _HELD[key] = 1
        try:
            yield
        finally:
            del _HELD[key]
            if created and {p.name for p in run_dir.iterdir()} <= {files.LOCK}:
                # The command made the folder and stopped before writing anything in it (bad settings
                # found late, a failed start): it leaves no empty run behind.
                (run_dir / files.LOCK).unlink(missing_ok=True)
                with contextlib.suppress(OSError):
                    run_dir.rmdir()
    finally:
        os.close(fd)  # releases the lock


def _probe(run_dir):
    """Fails now, with the folder named, if run_dir or a folder the work will write in (figures/, tensorboard/)
    can't be written, or is a file: not after the first epoch or after the work is done."""
    for folder in (Path(run_dir), files.figures_dir(run_dir), tensorboard.folder(run_dir)):
        if folder.exists() and not folder.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "a file stands where the run keeps a folder", str(folder))
        if folder.is_dir():
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".probe.", suffix=files.TEMP)
            os.close(fd)
            os.unlink(tmp)


def _recover(run_dir):
    """Repairs what a crash or a kill can leave behind; says what it did."""
    _settle_overwrite(run_dir)
    folders = [folder for folder in (Path(run_dir), files.figures_dir(run_dir)) if folder.is_dir()]
    stale = [path for folder in folders for path in folder.glob(f".*{files.TEMP}")]
    for path in stale:
        path.unlink(missing_ok=True)
    if stale:
        files.warn(f"removed {len(stale)} temp file(s) in {run_dir} left by a write that was cut short")
    metrics = Path(run_dir) / files.METRICS
    text = metrics.read_text(errors="replace") if metrics.exists() else ""
    if text:
        rows = [records.parse_row(line) for line in text.splitlines()]
        if any(row is None for row in rows) or not text.endswith("\n"):
            torn_tail = all(row is not None for row in rows[:-1])
            kept = files.damaged_name(metrics)
            if not torn_tail:
                shutil.copyfile(metrics, kept)
            records.write_metrics(run_dir, [row for row in rows if row is not None])
            files.warn(f"dropped the partial last line of {metrics} (a write cut short)" if torn_tail else
                        f"dropped {rows.count(None)} damaged line(s) of {metrics}; the original is {kept.name}")
    summary = Path(run_dir) / files.SUMMARY
    if summary.exists() and records.read_json(summary) is None:
        kept = files.damaged_name(summary)
        os.replace(summary, kept)
        rebuilt = _rebuild_training_summary(run_dir)
        files.warn(f"{summary} was damaged: moved to {kept.name}; "
                    + ("its training numbers are rebuilt from the checkpoint and metrics.jsonl; " if rebuilt else "")
                    + "aevb evaluate measures the rest again")


def _rebuild_training_summary(run_dir):
    """summary.json's training part from the checkpoint (the truth) and metrics.jsonl, if both are readable."""
    try:
        config, epoch = checkpoint.read_checkpoint_config(run_dir)
    except CheckpointError:
        return False
    rows = records.read_metrics(run_dir, epoch)
    if not rows:
        return False
    images_per_epoch = config.train_size // config.batch_size * config.batch_size  # whole batches
    records.update_summary(run_dir, records.training_summary(rows, epoch, images_per_epoch))
    return True


def _settle_overwrite(run_dir):
    """An --overwrite moves the old run aside; once the new run has a checkpoint the old one goes,
    and a new run that ended (or was killed) before its first checkpoint gives the old one back."""
    aside = Path(run_dir) / files.ASIDE
    if not aside.is_dir():
        return
    if files.has_checkpoint(run_dir):
        shutil.rmtree(aside)
        return
    files.clear(run_dir)
    for item in aside.iterdir():
        os.replace(item, Path(run_dir) / item.name)
    aside.rmdir()
    files.warn(f"{run_dir}: the new run had no checkpoint yet, so the run it was to replace is back")


@contextlib.contextmanager
def replacing(run_dir):
    """For --overwrite: moves the run's files aside, and removes them only once the new run has
    written its first checkpoint (otherwise they come back). Call inside `writing`."""
    aside = Path(run_dir) / files.ASIDE
    aside.mkdir()
    # The checkpoint first: a kill halfway then leaves no checkpoint in run_dir, and _settle_overwrite
    # puts the old run back whole.
    for name in files.RUN_FILES:
        if (Path(run_dir) / name).exists():
            os.replace(Path(run_dir) / name, aside / name)
    try:
        yield
    finally:
        _settle_overwrite(run_dir)


def _check_settings(run_dir, settings, mode):
    """Bad settings are refused before anything is written; a conflict with a checkpoint is said
    under the run's lock, after a run that is busy has said so."""
    try:
        checkpoint.resolve(run_dir, settings, mode)
    except CheckpointError:
        if not Path(run_dir).is_dir():
            raise


def hold(stack, members, mode, command, resolve=False):
    """Refuses bad settings before anything is written, then takes every run's writer lock for the
    stack's block (contextlib.ExitStack). members: [(run directory, settings)] (aevb.runs.files.members).
    resolve: also refuse, under the locks, settings that conflict with a run's checkpoint.
    mode: new, resume, auto or overwrite (checkpoint.resolve); command: written in the lock for another process's
    message."""
    for one_dir, one_settings in members:
        _check_settings(one_dir, one_settings, mode)
    for one_dir, _ in members:
        stack.enter_context(writing(one_dir, command, wait=False))
    for one_dir, one_settings in members if resolve else ():
        checkpoint.resolve(one_dir, one_settings, mode)


def check_each(members, mode, command):
    """Each member checked as hold(..., resolve=True) checks it, under its lock, one lock held at a time: every
    point of a sweep free and fitting its checkpoint before its record is written (a lock per point held at
    once would run out of file descriptors on a sweep of a thousand points).
    members: [(run directory, settings)] (aevb.runs.files.members); mode: new, resume, auto or overwrite; command:
    the command, written in the lock for another process's message."""
    for member in members:
        with contextlib.ExitStack() as stack:
            hold(stack, [member], mode, command, resolve=True)
