"""TensorBoard event files in the run directory (RUN/tensorboard), written beside metrics.jsonl.

Each epoch's row of metrics.jsonl becomes scalars under epoch/ (train_elbo, test_elbo, seconds and the
tracked log p(x)), flushed as it is written, so `tensorboard --logdir runs` shows a run or a whole sweep
live; at the end of `aevb run` the summary's numbers (summary/) and a few figures (figures/) follow.
metrics.jsonl stays the record; these files are a view of it (tensorboardX writes them, no TensorFlow).
A resumed run drops metrics.jsonl's epochs after its checkpoint; the event files keep them, and the
epochs trained again are written beside them at the same steps. --overwrite removes them.
"""

import math
from pathlib import Path

from . import files
from .files import TENSORBOARD

FIGURES = ("samples", "latent", "manifold", "curves", "bounds")  # those of a run's figures TensorBoard shows
_writers = {}  # run directory -> its open SummaryWriter, one event file per training


def folder(run_dir):
    """The run's TensorBoard folder."""
    return Path(run_dir) / TENSORBOARD


def _writer(run_dir):
    key = files.identity(run_dir)
    if key not in _writers:
        from tensorboardX import SummaryWriter  # imported when first needed: the CLI's --help stays fast

        _writers[key] = SummaryWriter(logdir=str(folder(run_dir)), flush_secs=5)
    return _writers[key]


def _numbers(mapping, prefix=""):
    """The finite real numbers of a (nested) dict as {"a/b": value}; lists and text are left out."""
    for name, value in mapping.items():
        if isinstance(value, dict):
            yield from _numbers(value, f"{prefix}{name}/")
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            yield prefix + name, float(value)


def add_epoch(run_dir, row):
    """One metrics.jsonl row (with its "epoch") as scalars under epoch/, on disk at once."""
    writer = _writer(run_dir)
    for name, value in _numbers({k: v for k, v in row.items() if k != "epoch"}):
        writer.add_scalar(f"epoch/{name}", value, row["epoch"])
    writer.flush()


def add_summary(run_dir, summary, figures):
    """The summary's numbers under summary/ and the FIGURES of figures ({kind: PNG path}) under figures/, at
    the last epoch; the run's event file is then closed."""
    import matplotlib.image

    writer, step = _writer(run_dir), int(summary.get("epochs", 0))
    for name, value in _numbers(summary):
        writer.add_scalar(f"summary/{name}", value, step)
    for path in (figures[kind] for kind in FIGURES if kind in figures):
        pixels = matplotlib.image.imread(path)  # (H, W, 3 or 4) floats in [0, 1]
        writer.add_image(f"figures/{Path(path).stem}", pixels[..., :3], step, dataformats="HWC")
    close(run_dir)


def close(run_dir):
    """Closes this process's TensorBoard writer of the run, if one is open."""
    writer = _writers.pop(files.identity(run_dir), None)
    if writer is not None:
        writer.close()
