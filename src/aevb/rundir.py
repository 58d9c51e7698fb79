"""The run directory: the one module that knows its layout.

runs/<name>/
  config.json          every setting (the frozen Config), for people to read
  params.safetensors   the checkpoint, the source of truth: weights by readable names, Adam's
                       state under optimizer.*, the config and the epoch in its metadata
  metrics.jsonl        one JSON line per trained epoch (append-only)
  summary.json         the run's numbers (merged by each command that measures something)
  figures/             every figure, PNG and SVG
  report.html          the report

Every file is replaced atomically (temp file + rename), so a kill at any moment leaves the old
file or the new one. Which config a command trains with, and whether it resumes, is decided
here (``resolve``), once, before any data is loaded or any file is touched.
"""

import dataclasses
import json
import math
import os
import shutil
import tempfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from .config import Config

CHECKPOINT = "params.safetensors"
CONFIG = "config.json"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
FIGURES = "figures"
REPORT = "report.html"
FORMAT = "aevb-checkpoint-2"  # 2: objectives, datasets and networks by name (1 had `kl`)


class CheckpointError(RuntimeError):
    """A checkpoint is missing, damaged, or does not match what was asked for."""


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
    """write(temp_path) then rename: a kill at any moment leaves the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name + ".")
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path, text):
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def write_report(run_dir, html_text):
    return atomic_write_text(report_path(run_dir), html_text)


# ---- checkpoints --------------------------------------------------------------------------------


def _flatten(tree, prefix):
    """{"encoder.hidden.weight": array, ...}: readable names from the pytree's keys."""
    flat = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        parts = [prefix] if prefix else []
        for entry in path:
            parts.append(str(getattr(entry, "key", getattr(entry, "name", getattr(entry, "idx", entry)))))
        flat[".".join(parts)] = np.asarray(leaf)
    return flat


def _unflatten(template, prefix, tensors, where):
    leaves, treedef = jax.tree_util.tree_flatten(template)
    restored = []
    for name, leaf in zip(_flatten(template, prefix), leaves, strict=True):
        if name not in tensors:
            raise CheckpointError(f"{where}: tensor {name} is missing")
        value = tensors[name]
        if value.shape != leaf.shape or value.dtype != leaf.dtype:
            raise CheckpointError(f"{where}: tensor {name} has shape {value.shape} {value.dtype}, the config "
                                  f"needs {leaf.shape} {leaf.dtype}")
        restored.append(jnp.asarray(value))
    return jax.tree_util.tree_unflatten(treedef, restored)


def save_checkpoint(run_dir, config, params, opt_state, epoch):
    """params.safetensors: weights by readable names (encoder.hidden.weight, ...), Adam's state
    under optimizer.*, and the config and epoch in the metadata. Data, never code."""
    tensors = {**_flatten(params, ""), **_flatten(opt_state, "optimizer")}
    metadata = {"format": FORMAT, "config": config.to_json(), "epoch": str(epoch)}
    atomic_write(Path(run_dir) / CHECKPOINT, lambda tmp: save_file(tensors, tmp, metadata=metadata))


def read_checkpoint_config(run_dir):
    """(Config, epoch) stored in a run's checkpoint."""
    path = Path(run_dir) / CHECKPOINT
    if not Path(run_dir).is_dir():
        raise CheckpointError(f"run directory {run_dir} does not exist")
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist (train first: aevb train --name {Path(run_dir).name})")
    try:
        with safe_open(str(path), "np") as stored:
            metadata = stored.metadata() or {}
    except Exception as error:  # safetensors raises its own types for truncated files
        raise CheckpointError(f"{path} is damaged or truncated ({error})") from None
    found = metadata.get("format", "none")
    if not found.startswith("aevb-checkpoint-"):
        raise CheckpointError(f"{path} is not an aevb checkpoint")
    if found != FORMAT:
        raise CheckpointError(f"{path} has format {found}; this aevb reads {FORMAT}. Train the run again "
                              f"(aevb train --name {Path(run_dir).name} --overwrite)")
    try:
        return Config.from_json(metadata["config"]), int(metadata["epoch"])
    except (KeyError, ValueError) as error:
        raise CheckpointError(f"{path} holds an unreadable config ({error})") from None


def load_checkpoint(run_dir, template):
    """(config, params, opt_state, epoch). template(config) gives the (params, opt_state) pytrees
    whose structure, shapes and dtypes the stored tensors must have."""
    config, epoch = read_checkpoint_config(run_dir)
    path = Path(run_dir) / CHECKPOINT
    try:
        with safe_open(str(path), "np") as stored:
            tensors = {name: stored.get_tensor(name) for name in stored.keys()}
    except Exception as error:
        raise CheckpointError(f"{path} is damaged or truncated ({error})") from None
    params_template, opt_template = template(config)
    return config, _unflatten(params_template, "", tensors, path), _unflatten(opt_template, "optimizer", tensors,
                                                                               path), epoch


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
    """Removes a run's files, for --overwrite: a run directory never mixes two runs."""
    for name in (CHECKPOINT, CONFIG, METRICS, SUMMARY, REPORT):
        (Path(run_dir) / name).unlink(missing_ok=True)
    shutil.rmtree(figures_dir(run_dir), ignore_errors=True)


def write_config(run_dir, config):
    atomic_write_text(Path(run_dir) / CONFIG, json.dumps(json.loads(config.to_json()), indent=2) + "\n")


# ---- metrics and summary ------------------------------------------------------------------------


def read_metrics(run_dir, up_to_epoch=math.inf):
    """The rows of metrics.jsonl, one per trained epoch, up to up_to_epoch."""
    path = Path(run_dir) / METRICS
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [row for row in rows if row["epoch"] <= up_to_epoch]


def write_metrics(run_dir, rows):
    atomic_write_text(Path(run_dir) / METRICS, "".join(json.dumps(row) + "\n" for row in rows))


def append_metrics(run_dir, row):
    with open(Path(run_dir) / METRICS, "a") as f:
        f.write(json.dumps(row) + "\n")


def read_summary(run_dir):
    """summary.json as a dict; {} before anything was measured."""
    path = Path(run_dir) / SUMMARY
    return json.loads(path.read_text()) if path.is_file() else {}


def update_summary(run_dir, values):
    """Merges values into summary.json (written atomically); returns the merged summary."""
    summary = {**read_summary(run_dir), **values}
    atomic_write_text(Path(run_dir) / SUMMARY, json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary
