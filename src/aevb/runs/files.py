"""The run directory's layout, its paths and atomic writes.

runs/<name>/
  config.json          every setting (the frozen Config), for people to read
  params.safetensors   the checkpoint, the source of truth (aevb.runs.checkpoint's format)
  metrics.jsonl        one JSON line per trained epoch (append-only)
  summary.json         the run's numbers (merged by each command that measures something)
  per_image.npz        each test image's ELBO, IWAE bound and exact log p(x) (what the figures of gaps need)
  figures/             every figure, PNG and SVG
  tensorboard/         TensorBoard's event files: metrics.jsonl's rows, then the summary (aevb.runs.tensorboard)
  report.html          the report
  .lock                who writes the run now (aevb.runs.lock's OS lock; the file itself is harmless)
  .replaced/           the run an --overwrite in progress replaces (aevb.runs.lock)

Every file is replaced atomically (temp file + rename): a kill at any moment leaves the old file
or the new one. One process writes a run at a time (aevb.runs.lock). Which config a command trains
with, and whether it resumes, is decided by aevb.runs.checkpoint.resolve before any file is touched;
aevb.runs.records reads and writes the files that hold numbers.
"""

import contextlib
import dataclasses
import os
import shutil
import sys
import tempfile
from pathlib import Path

from ..errors import ConfigError

CHECKPOINT = "params.safetensors"
CONFIG = "config.json"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
PER_IMAGE = "per_image.npz"
FIGURES = "figures"
TENSORBOARD = "tensorboard"  # TensorBoard's event files (aevb.runs.tensorboard)
REPORT = "report.html"
LOCK = ".lock"
ASIDE = ".replaced"  # an --overwrite in progress keeps the run it replaces here
TEMP = ".tmp"  # the suffix of atomic writes' temp files
GROUP = "group.json"  # in a folder of seeds' run directories: their numbers' mean and spread
SWEEP = "sweep.json"  # in a sweep's folder: its grid and its points
DATA = "data.json"  # for a user's npz: the size and SHA-256 of the file the run trained on
# The checkpoint first: see aevb.runs.lock.replacing.
RUN_FILES = (CHECKPOINT, CONFIG, DATA, METRICS, SUMMARY, PER_IMAGE, REPORT, FIGURES, TENSORBOARD)


def warn(message):
    """Prints message on stderr as aevb's warning."""
    print(f"aevb: warning: {message}", file=sys.stderr)


def identity(run_dir):
    """A run's identity: its resolved directory (symlinks, .. and relative spellings of one folder are one run).
    Wherever runs are collected, grouped or locked, they are told apart by this."""
    return os.path.realpath(run_dir)


def damaged_name(path):
    """Where a damaged file is kept: NAME.damaged, or NAME.damaged.2, .3, ... when earlier damage is kept there
    already (a second damage never overwrites the first copy).
    path: the damaged file."""
    path = Path(path)
    candidate, n = path.with_name(path.name + ".damaged"), 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}.damaged.{n}")
    return candidate


def figures_dir(run_dir):
    """The run's figures folder."""
    return Path(run_dir) / FIGURES


def figure_path(run_dir, name):
    """Where the PNG of the figure called name lives (its SVG sits beside it)."""
    return figures_dir(run_dir) / f"{name}.png"


def report_path(run_dir):
    """The run's report.html."""
    return Path(run_dir) / REPORT


def has_checkpoint(run_dir):
    """Whether the run directory holds a checkpoint file."""
    return (Path(run_dir) / CHECKPOINT).exists()


@contextlib.contextmanager
def removed_if_refused(run_dirs):
    """Run directories (and their parents) that the block makes are removed again if it fails: a command
    refused before it trains leaves nothing behind. Only aevb's bookkeeping goes (.lock, data.json, an empty
    metrics.jsonl), and a directory only once empty: nothing a run wrote is ever removed."""
    new = []
    for run_dir in map(Path, run_dirs):
        for folder in (run_dir, *run_dir.parents):
            if folder.exists():
                break
            new.append(folder)
    try:
        yield
    except BaseException:
        for folder in sorted(set(new), key=lambda p: len(p.parts), reverse=True):  # the deepest first
            for name in (LOCK, DATA, METRICS):
                path = folder / name
                if path.is_file() and (name != METRICS or path.stat().st_size == 0):
                    path.unlink()
            with contextlib.suppress(OSError):  # not empty: the run's own files stay
                folder.rmdir()
        raise


# ---- atomic files -------------------------------------------------------------------------------


def atomic_write(path, write):
    """write(temp_path), fsync, then rename: a kill or a crash at any moment leaves the old file or
    the new one, never a mix. A failed write (a full disk) leaves the old file and no temp file.
    path: the file to write. Raises the OSError of the failed write, naming path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name + ".", suffix=TEMP)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    except OSError as error:
        Path(tmp).unlink(missing_ok=True)
        if error.filename is None and error.errno is not None:  # a failed write() names no file: name ours
            raise OSError(error.errno, error.strerror, str(path)) from None
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path, text):
    """Writes text to path atomically (atomic_write); returns path."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def write_report(run_dir, html_text):
    """Writes the run's report.html atomically; html_text: the page."""
    return atomic_write_text(report_path(run_dir), html_text)


def save_figure(run_dir, name, figure):
    """figures/name.png and figures/name.svg, each written atomically; returns the PNG's path. Every text of
    the figure is drawn as plain text (a user's text, a file or class name holding a $, would otherwise be
    parsed as a formula and fail) except the tick labels of a log axis, which matplotlib's formatter writes
    as $\\mathdefault{10^{2}}$ to be parsed (drawn plain, they showed as that source)."""
    from matplotlib.text import Text  # here: importing aevb.runs starts no matplotlib
    from matplotlib.ticker import LogFormatter

    for text in figure.findobj(Text):
        text.set_parse_math(False)
    for axis in (axis for ax in figure.axes for axis in (ax.xaxis, ax.yaxis)):
        for ticks, formatter in ((axis.get_major_ticks(), axis.get_major_formatter()),
                                 (axis.get_minor_ticks(), axis.get_minor_formatter())):
            for label in (tick_label for tick in ticks for tick_label in (tick.label1, tick.label2)):
                label.set_parse_math(isinstance(formatter, LogFormatter))
    path = figure_path(run_dir, name)
    atomic_write(path.with_suffix(".svg"), lambda tmp: figure.savefig(tmp, format="svg", bbox_inches="tight"))
    return atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=150, bbox_inches="tight"))


def clear(run_dir):
    """Removes a run's files: a run directory never mixes two runs."""
    for name in RUN_FILES[:-2]:
        (Path(run_dir) / name).unlink(missing_ok=True)
    for folder in (FIGURES, TENSORBOARD):
        shutil.rmtree(Path(run_dir) / folder, ignore_errors=True)



def members(settings, run_dir, seeds):
    """[(run directory, settings)]: run_dir itself, or with seeds one run directory RUN_DIR/seed-S each
    (settings: a Config or a dict of the settings given). Raises ConfigError for a seed given twice."""
    if seeds is None:
        return [(Path(run_dir), settings)]
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"--seeds has a seed twice: {','.join(map(str, seeds))}")
    return [(Path(run_dir) / f"seed-{seed}", {**settings, "seed": seed} if isinstance(settings, dict)
             else dataclasses.replace(settings, seed=seed)) for seed in seeds]


def seeds_text(seeds):
    """Seeds in a few characters, for a line or a progress bar: 0,1,2, or 0-299 (consecutive), or
    0,1,2,3,4,5,... (40 seeds)."""
    if len(seeds) > 3 and list(seeds) == list(range(seeds[0], seeds[0] + len(seeds))):
        return f"{seeds[0]}-{seeds[-1]}"
    return ",".join(map(str, seeds)) if len(seeds) <= 8 else f"{','.join(map(str, seeds[:6]))},... ({len(seeds)} seeds)"
