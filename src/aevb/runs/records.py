"""The run directory's records of numbers: config.json, metrics.jsonl, summary.json, per_image.npz;
a group's group.json (seeds); a sweep's sweep.json is aevb.runs.sweeps'. Each written atomically (aevb.runs.files)."""

import contextlib
import dataclasses
import hashlib
import json
import math
import time
import zipfile
from pathlib import Path

import numpy as np

from ..config import Config
from ..data import npz
from ..errors import ConfigError, DataError, RecordError
from . import checkpoint, files, tensorboard
from .files import CONFIG, GROUP, METRICS, PER_IMAGE, SUMMARY


def write_config(run_dir, config):
    """Writes config.json (the Config's settings) atomically."""
    files.atomic_write_text(Path(run_dir) / CONFIG, json.dumps(json.loads(config.to_json()), indent=2) + "\n")


def read_json(path):
    """The JSON object in the file at path, or None where it is missing, damaged or not an object."""
    try:
        value = json.loads(Path(path).read_text())
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def parse_row(line):
    """One metrics.jsonl line as its row (a dict with an integer epoch), or None for a damaged line."""
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
    """Writes metrics.jsonl afresh from rows (dicts), atomically."""
    files.atomic_write_text(Path(run_dir) / METRICS, "".join(json.dumps(row) + "\n" for row in rows))


def append_metrics(run_dir, row):
    """Appends one epoch's row (a dict) to metrics.jsonl and to the TensorBoard files."""
    with open(Path(run_dir) / METRICS, "a") as f:
        f.write(json.dumps(row) + "\n")
    tensorboard.add_epoch(run_dir, row)  # the live view of the same row


def training_summary(rows, epoch, images_per_epoch):
    """summary.json's training numbers from metrics.jsonl's rows, for a run trained to epoch: the
    epochs' own seconds, and apart from them the seconds of what was recorded after each epoch.
    images_per_epoch: the images one epoch trains on."""
    seconds = sum(row["seconds"] for row in rows)
    summary = {"epochs": epoch, "train_elbo_last_epoch": rows[-1]["train_elbo"], "training_seconds": seconds,
               "seconds_per_epoch": seconds / len(rows), "images_per_second": images_per_epoch * len(rows) / seconds}
    if all("recording_seconds" in row for row in rows):  # rows written before it was recorded lack it
        summary["recording_seconds"] = sum(row["recording_seconds"] for row in rows)
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

    files.atomic_write(Path(run_dir) / PER_IMAGE, write)


# The keys of summary.json and group.json whose values are text; every other value is a number, null, true or
# false, or a list or object of them. Checked where the files are read (checked), so a page never formats or shows
# a value of the wrong kind.
TEXT_KEYS = frozenset({"binarization", "criterion", "mask", "units", "kind", "platform", "q_star", "schedule",
                       "start", "reference", "runs", "posterior", "defensive_proposal"})
TEXT_MAX = 1000  # characters of a text value


def checked(value, path, key=""):
    """value (read from path) if every leaf is of its kind (TEXT_KEYS: text, else numbers); else RecordError
    naming the file and the key."""
    if isinstance(value, dict):
        for name, inner in value.items():
            checked(inner, path, f"{key}.{name}" if key else str(name))
        return value
    if isinstance(value, list):
        for i, inner in enumerate(value):
            checked(inner, path, f"{key}[{i}]")
        return value
    name = key.rsplit(".", 1)[-1].split("[")[0]  # the leaf's own name: "posterior" of "a.b[0].posterior", "b" of "a.b[3]"
    text = name in TEXT_KEYS
    if (isinstance(value, str) and len(value) <= TEXT_MAX) if text else (value is None or isinstance(
            value, (int, float))):
        return value
    wanted = f"text of at most {TEXT_MAX} characters" if text else "a number"
    shown = repr(value)[:60]
    raise RecordError(f"{path} is damaged: {key} must be {wanted}, not {shown}; measure it again (aevb evaluate, "
                      "or aevb train --resume for the training numbers)")


def kept(run_dir, write, numbers, per_image, text):
    """A stage's numbers saved as soon as they are computed (write: this process writes the run), then
    described (text, or a function giving it): nothing computed is lost to a later stage or to printing.
    per_image: the per-image arrays, saved to per_image.npz beside summary.json."""
    try:
        if write:
            update_summary(run_dir, numbers)
            update_per_image(run_dir, per_image)
    finally:  # shown even if the write fails: a failed write can't take the numbers with it
        print(text() if callable(text) else text, flush=True)


def read_summary(run_dir):
    """summary.json as a dict, its values checked (checked); {} before anything was measured (or if it is not
    JSON: the run's next writer moves it aside, aevb.runs.lock)."""
    path = Path(run_dir) / SUMMARY
    return checked(read_json(path) or {}, path) if path.is_file() else {}


def read_group(group_dir):
    """GROUP/group.json as a dict, its values checked; None where there is none or it is not JSON."""
    path = Path(group_dir) / GROUP
    group = read_json(path) if path.is_file() else None
    return None if group is None else checked(group, path)


def write_group_summary(group_dir, run_dirs):
    """GROUP/group.json from the seeds' summaries: for every number they all hold, the values,
    their mean and their standard deviation across seeds (n - 1 in the denominator; 0 for one)."""
    summaries = [read_summary(d) for d in run_dirs]
    seeds = [checkpoint.read_checkpoint_config(d)[0].seed for d in run_dirs]  # config.json may be damaged
    shared = [key for key, value in summaries[0].items() if isinstance(value, (int, float))
              and not isinstance(value, bool) and all(isinstance(s.get(key), (int, float)) for s in summaries)]
    values = {key: [s[key] for s in summaries] for key in sorted(shared)}
    group = {"seeds": seeds, "runs": [Path(d).name for d in run_dirs], "values": values,
             "mean": {key: float(np.mean(v)) for key, v in values.items()},
             "std": {key: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0 for key, v in values.items()}}
    files.atomic_write_text(Path(group_dir) / GROUP, json.dumps(group, indent=2, sort_keys=True) + "\n")
    return group


def describe_group(name, group):
    """Lines for the main numbers of a group.json: mean ± sd over the seeds.
    name: the group's folder name."""
    seeds = ",".join(map(str, group["seeds"]))
    return [f"{name}: {key} {group['mean'][key]:.2f} ± {group['std'][key]:.2f} (mean ± sd over seeds {seeds})"
            for key in ("test_elbo", "test_iwae", "test_log_px", "test_log_px_ais", "bdmc_gap", "seconds_per_epoch")
            if key in group["mean"]]


def evaluated(run_dir, epoch, exact, ais, extras=False):
    """Whether summary.json holds an evaluation at this epoch, with the exact log p(x), AIS and the exact
    evaluation's extras (the bounds against K, the gap decomposition: not there after a quick one) if asked.
    ais: whether the evaluation must hold AIS's numbers."""
    summary = read_summary(run_dir)
    return (summary.get("evaluated_epoch") == epoch and (not exact or "test_log_px" in summary)
            and (not ais or "test_log_px_ais" in summary) and (not extras or "gap_decomposition" in summary))


# The stages of aevb run timed in summary.json's run_stages (wall seconds), in the order it runs them;
# training's own time is training_seconds, the rest of a command start-up, data and compiles.
RUN_STAGES = ("evaluate", "figures", "completion", "answers", "report")


@contextlib.contextmanager
def stage(run_dir, name, write=True):
    """Times the block and, once it has finished without an error, merges {name: wall seconds} into
    summary.json's run_stages (each stage's time when it last ran); write False: times nothing."""
    began = time.perf_counter()
    yield
    if write:
        stages = read_summary(run_dir).get("run_stages", {})
        update_summary(run_dir, {"run_stages": {**stages, name: time.perf_counter() - began}})


def timed(run_dir, name, fn, *args):
    """``fn(*args)`` inside ``stage(run_dir, name)``."""
    with stage(run_dir, name):
        return fn(*args)


def update_summary(run_dir, values):
    """Merges values into summary.json (written atomically); returns the merged summary."""
    summary = {**read_summary(run_dir), **values}
    files.atomic_write_text(Path(run_dir) / SUMMARY, json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary


def data_record(dataset):
    """{"dataset", "bytes", "sha256"} of a user's npz file; None for the datasets of the table (their
    files are verified by their own digests)."""
    if not dataset.startswith(npz.NPZ):
        return None
    path, digest = Path(dataset[len(npz.NPZ):]), hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {"dataset": dataset, "bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def check_data(run_dir, dataset, resume, allow_changed=False):
    """Records the npz a run trains on; on a resume, refuses a file that has changed since (other
    images of the same shape would train on silently), unless allow_changed, which says so.
    Raises DataError for a changed file."""
    now = data_record(dataset)
    if now is None:
        return
    path = Path(run_dir) / files.DATA
    before = json.loads(path.read_text()) if resume and path.is_file() else now
    if before.get("sha256") != now["sha256"]:
        change = (f"{dataset[len(npz.NPZ):]} has changed since {run_dir} was trained on it ({before.get('bytes')} "
                  f"bytes, SHA-256 {str(before.get('sha256'))[:12]}..., now {now['bytes']} bytes, "
                  f"{now['sha256'][:12]}...)")
        if not allow_changed:
            raise DataError(f"{change}; put the old file back, train again with --overwrite, or go on with the new "
                            "images: aevb train --resume --allow-changed-data")
        files.warn(f"{change}; going on with the new images (--allow-changed-data)")
    files.atomic_write_text(path, json.dumps(now, indent=2) + "\n")
