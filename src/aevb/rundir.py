"""The run directory: the one module that knows its layout, and what keeps it whole.

runs/<name>/
  config.json          every setting (the frozen Config), for people to read
  params.safetensors   the checkpoint, the source of truth (aevb.checkpoint's format)
  metrics.jsonl        one JSON line per trained epoch (append-only)
  summary.json         the run's numbers (merged by each command that measures something)
  per_image.npz        each test image's ELBO, IWAE bound and exact log p(x) (what the figures of gaps need)
  figures/             every figure, PNG and SVG
  report.html          the report
  .lock                who writes the run now (aevb.writer's OS lock; the file itself is harmless)
  .replaced/           the run an --overwrite in progress replaces (aevb.writer)

Every file is replaced atomically (temp file + rename): a kill at any moment leaves the old file
or the new one. One process writes a run at a time (aevb.writer). Which config a command trains
with, and whether it resumes, is decided here (``resolve``) before any file is touched.
"""

import dataclasses
import json
import math
import os
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from . import checkpoint
from .checkpoint import CheckpointError  # noqa: F401 (raised here too; callers catch it from here)
from .config import Config

CHECKPOINT = "params.safetensors"
CONFIG = "config.json"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
PER_IMAGE = "per_image.npz"
FIGURES = "figures"
REPORT = "report.html"
LOCK = ".lock"
ASIDE = ".replaced"  # an --overwrite in progress keeps the run it replaces here
TEMP = ".tmp"  # the suffix of atomic writes' temp files
RUN_FILES = (CHECKPOINT, CONFIG, METRICS, SUMMARY, PER_IMAGE, REPORT, FIGURES)  # the checkpoint first: see writer


def warn(message):
    print(f"aevb: warning: {message}", file=sys.stderr)


def figures_dir(run_dir):
    return Path(run_dir) / FIGURES


def figure_path(run_dir, name):
    """Where the PNG of the figure called name lives (its SVG sits beside it)."""
    return figures_dir(run_dir) / f"{name}.png"


def report_path(run_dir):
    return Path(run_dir) / REPORT


def has_checkpoint(run_dir):
    return (Path(run_dir) / CHECKPOINT).exists()


# ---- atomic files -------------------------------------------------------------------------------


def atomic_write(path, write):
    """write(temp_path), fsync, then rename: a kill or a crash at any moment leaves the old file or
    the new one, never a mix. A failed write (a full disk) leaves the old file and no temp file."""
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
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def write_report(run_dir, html_text):
    return atomic_write_text(report_path(run_dir), html_text)


def save_figure(run_dir, name, figure):
    """figures/name.png and figures/name.svg, each written atomically; returns the PNG's path."""
    path = figure_path(run_dir, name)
    atomic_write(path.with_suffix(".svg"), lambda tmp: figure.savefig(tmp, format="svg", bbox_inches="tight"))
    return atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=150, bbox_inches="tight"))


# ---- checkpoints and the resume policy ----------------------------------------------------------


def save_checkpoint(run_dir, config, params, opt_state, epoch):
    atomic_write(Path(run_dir) / CHECKPOINT, lambda tmp: checkpoint.write(tmp, config, params, opt_state, epoch))


def read_checkpoint_config(run_dir):
    """(Config, epoch) stored in a run's checkpoint."""
    path = Path(run_dir) / CHECKPOINT
    if not Path(run_dir).is_dir():
        raise CheckpointError(f"run directory {run_dir} does not exist")
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist (train first: aevb train --name {Path(run_dir).name})")
    return checkpoint.read_config(path, _retrain_hint(run_dir))


def _retrain_hint(run_dir):
    return f"Train the run again (aevb train --name {Path(run_dir).name} --overwrite)"


def load_checkpoint(run_dir, template):
    """(config, params, opt_state, epoch); see aevb.checkpoint.read."""
    read_checkpoint_config(run_dir)  # the clear messages for a missing run or checkpoint
    return checkpoint.read(Path(run_dir) / CHECKPOINT, template, _retrain_hint(run_dir))


def resolve(run_dir, settings, mode):
    """(config, resume): what to train in run_dir, decided before anything is loaded or written.

    settings: a Config, or a dict of the settings given (the rest from the defaults, or from the
    checkpoint when resuming). mode: "new" (refuses a run that has a checkpoint), "resume"
    (continues the checkpoint; only epochs may change, and not below the checkpoint's), "auto"
    (resume if there is a checkpoint, else new) or "overwrite" (start again).
    """
    given = dataclasses.asdict(settings) if isinstance(settings, Config) else dict(settings)
    present = has_checkpoint(run_dir)
    if mode == "new" and present:
        raise CheckpointError(f"{run_dir} already holds a checkpoint; use --resume to continue it "
                              "or --overwrite to start again")
    if mode == "overwrite" or not (mode == "resume" or present):
        return Config(**given), False
    stored, epoch = read_checkpoint_config(run_dir)
    config = dataclasses.replace(stored, **given)
    if dataclasses.replace(config, epochs=stored.epochs) != stored:
        raise CheckpointError(f"{run_dir} was trained with a different config: {stored.differences(config)}")
    if config.epochs < epoch:
        raise CheckpointError(f"{run_dir} is already at epoch {epoch}; --epochs {config.epochs} would go back")
    return config, True


def clear(run_dir):
    """Removes a run's files: a run directory never mixes two runs."""
    for name in RUN_FILES[:-1]:
        (Path(run_dir) / name).unlink(missing_ok=True)
    shutil.rmtree(figures_dir(run_dir), ignore_errors=True)


# ---- config, metrics and summary ----------------------------------------------------------------


def write_config(run_dir, config):
    atomic_write_text(Path(run_dir) / CONFIG, json.dumps(json.loads(config.to_json()), indent=2) + "\n")


def read_json(path):
    try:
        value = json.loads(Path(path).read_text())
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def parse_row(line):
    try:
        row = json.loads(line)
    except ValueError:
        return None
    return row if isinstance(row, dict) and isinstance(row.get("epoch"), int) else None


def read_metrics(run_dir, up_to_epoch=math.inf):
    """The rows of metrics.jsonl, one per trained epoch, up to up_to_epoch (damaged lines skipped)."""
    path = Path(run_dir) / METRICS
    if not path.is_file():
        return []
    rows = [parse_row(line) for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return [row for row in rows if row is not None and row["epoch"] <= up_to_epoch]


def write_metrics(run_dir, rows):
    atomic_write_text(Path(run_dir) / METRICS, "".join(json.dumps(row) + "\n" for row in rows))


def append_metrics(run_dir, row):
    with open(Path(run_dir) / METRICS, "a") as f:
        f.write(json.dumps(row) + "\n")


def training_summary(rows, epoch, images_per_epoch):
    """summary.json's training numbers from metrics.jsonl's rows, for a run trained to epoch."""
    seconds = sum(row["seconds"] for row in rows)
    summary = {"epochs": epoch, "train_elbo_last_epoch": rows[-1]["train_elbo"], "training_seconds": seconds,
               "seconds_per_epoch": seconds / len(rows), "images_per_second": images_per_epoch * len(rows) / seconds}
    if len(rows) < epoch:  # rows lost with a damaged or deleted metrics.jsonl: say what the times cover
        summary["timed_epochs"] = len(rows)
    return summary


def read_per_image(run_dir):
    """per_image.npz as {name: array (N,)}: each image's ELBO, IWAE bound, exact log p(x); {} if absent."""
    path = Path(run_dir) / PER_IMAGE
    try:
        with np.load(path, allow_pickle=False) as stored:
            return {name: stored[name] for name in stored.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError):
        return {}


def update_per_image(run_dir, arrays):
    """Merges arrays into per_image.npz (written atomically)."""
    merged = {**read_per_image(run_dir), **{name: np.asarray(value) for name, value in arrays.items()}}
    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, **merged)

    atomic_write(Path(run_dir) / PER_IMAGE, write)


def read_summary(run_dir):
    """summary.json as a dict; {} before anything was measured (or if it is damaged)."""
    path = Path(run_dir) / SUMMARY
    return (read_json(path) or {}) if path.is_file() else {}


GROUP = "group.json"  # in a folder of seeds' run directories: their numbers' mean and spread
SWEEP = "sweep.json"  # in a sweep's folder: its grid and its points


def write_group_summary(group_dir, run_dirs):
    """GROUP/group.json from the seeds' summaries: for every number they all hold, the values,
    their mean and their standard deviation across seeds (n - 1 in the denominator; 0 for one)."""
    summaries = [read_summary(d) for d in run_dirs]
    seeds = [json.loads((Path(d) / CONFIG).read_text())["seed"] for d in run_dirs]
    shared = [key for key, value in summaries[0].items() if isinstance(value, (int, float))
              and not isinstance(value, bool) and all(isinstance(s.get(key), (int, float)) for s in summaries)]
    values = {key: [s[key] for s in summaries] for key in sorted(shared)}
    group = {"seeds": seeds, "runs": [Path(d).name for d in run_dirs], "values": values,
             "mean": {key: float(np.mean(v)) for key, v in values.items()},
             "std": {key: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0 for key, v in values.items()}}
    atomic_write_text(Path(group_dir) / GROUP, json.dumps(group, indent=2, sort_keys=True) + "\n")
    return group


def update_summary(run_dir, values):
    """Merges values into summary.json (written atomically); returns the merged summary."""
    summary = {**read_summary(run_dir), **values}
    atomic_write_text(Path(run_dir) / SUMMARY, json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary
