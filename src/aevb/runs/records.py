"""The run directory's records of numbers: config.json, metrics.jsonl, summary.json, per_image.npz;
a group's group.json (seeds) and a sweep's sweep.json. Each written atomically (aevb.runs.files)."""

import json
import math
import zipfile
from pathlib import Path

import numpy as np

from ..data import npz
from . import files
from .files import CONFIG, GROUP, METRICS, PER_IMAGE, SUMMARY, SWEEP


def write_config(run_dir, config):
    files.atomic_write_text(Path(run_dir) / CONFIG, json.dumps(json.loads(config.to_json()), indent=2) + "\n")


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
    files.atomic_write_text(Path(run_dir) / METRICS, "".join(json.dumps(row) + "\n" for row in rows))


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

    files.atomic_write(Path(run_dir) / PER_IMAGE, write)


def read_summary(run_dir):
    """summary.json as a dict; {} before anything was measured (or if it is damaged)."""
    path = Path(run_dir) / SUMMARY
    return (read_json(path) or {}) if path.is_file() else {}


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
    files.atomic_write_text(Path(group_dir) / GROUP, json.dumps(group, indent=2, sort_keys=True) + "\n")
    return group


def describe_group(name, group):
    """Lines for the main numbers of a group.json: mean ± sd over the seeds."""
    seeds = ",".join(map(str, group["seeds"]))
    return [f"{name}: {key} {group['mean'][key]:.2f} ± {group['std'][key]:.2f} (mean ± sd over seeds {seeds})"
            for key in ("test_elbo", "test_iwae", "test_log_px", "seconds_per_epoch") if key in group["mean"]]


def update_summary(run_dir, values):
    """Merges values into summary.json (written atomically); returns the merged summary."""
    summary = {**read_summary(run_dir), **values}
    files.atomic_write_text(Path(run_dir) / SUMMARY, json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary


def point_name(point, varied):
    """A sweep point's folder name from the settings it varies: latent_dim=5_objective=iwae."""
    def short(value):  # npz:/data/mine.npz -> npz-mine
        text = str(value)
        return f"npz-{Path(text[len(npz.NPZ):]).stem}" if text.startswith(npz.NPZ) else text.replace("/", "-")

    return "_".join(f"{name}={short(point[name])}" for name in varied) or "run"


def write_sweep(sweep_dir, grid, varied, seeds, points):
    """SWEEP/sweep.json: the grid ({setting: values}), the settings it varies, the seeds and the points' names."""
    Path(sweep_dir).mkdir(parents=True, exist_ok=True)
    files.atomic_write_text(Path(sweep_dir) / SWEEP, json.dumps(
        {"grid": {name: list(values) for name, values in grid.items()}, "varied": varied,
         "seeds": None if seeds is None else list(seeds),
         "points": [point_name(point, varied) for point in points]}, indent=2) + "\n")
