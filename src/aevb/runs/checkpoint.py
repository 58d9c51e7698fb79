"""The checkpoint: its file format, and the resume policy that reads it.

The format: safetensors with readable tensor names and the config as metadata.

Data, never code: the parameters by the names of their pytree keys (encoder.hidden.weight, ...),
Adam's state under optimizer.*, and in the metadata the format, the Config as JSON and the epoch.
`resolve` decides, before anything is written, which config a command trains and whether it resumes.
"""

import dataclasses
import hashlib
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from safetensors import safe_open
from safetensors.numpy import save

from ..config import Config
from ..data import datasets
from ..errors import CheckpointError, ConfigError, DataError
from . import files

FORMAT = "aevb-checkpoint-3"  # 3: the digest covers the header; 2: objectives, datasets, networks by name (1 had `kl`)
OLDER = "aevb-checkpoint-2"  # read too: its digest covers the tensors only (said once per file read)
HEADER = ("format", "config", "epoch")  # the metadata the digest covers beside the tensors


def flatten(tree, prefix=""):
    """{"encoder.hidden.weight": array, ...}: readable names from the pytree's keys.
    tree: a pytree of arrays; prefix: put before every name."""
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
    for name, leaf in zip(flatten(template, prefix), leaves, strict=True):
        if name not in tensors:
            raise CheckpointError(f"{where}: tensor {name} is missing")
        value = tensors[name]
        if value.shape != leaf.shape or value.dtype != leaf.dtype:
            raise CheckpointError(f"{where}: tensor {name} has shape {value.shape} {value.dtype}, the config "
                                  f"needs {leaf.shape} {leaf.dtype}")
        if not np.all(np.isfinite(value)):
            raise CheckpointError(f"{where}: tensor {name} holds NaN or inf; these parameters cannot be used "
                                  "(train again with a smaller --learning-rate)")
        restored.append(jnp.asarray(value))
    return jax.tree_util.tree_unflatten(treedef, restored)


def digest(tensors, header=None):
    """SHA-256 of named tensors, in name order (each name, dtype, shape and bytes), and of the header's
    format, config and epoch (HEADER) where header is given. Stored with them, it tells a damaged file
    from a good one (finite garbage would otherwise train on, a changed epoch or setting be believed)."""
    h = hashlib.sha256()
    for key in HEADER if header is not None else ():
        h.update(f"{key}={len(header[key])}:{header[key]};".encode())
    for name in sorted(tensors):
        value = np.ascontiguousarray(tensors[name])
        h.update(f"{name}:{value.dtype.str}:{value.shape};".encode())
        h.update(value.tobytes())
    return h.hexdigest()


def write(path, config, params, opt_state, epoch):
    """Writes the checkpoint file at path (the caller makes it atomic). The bytes are made in memory
    and written by Python, so a full disk raises an OSError like any other file's.
    opt_state: Adam's state; epoch: the epochs trained."""
    tensors = {**flatten(params), **flatten(opt_state, "optimizer")}
    header = {"format": FORMAT, "config": config.to_json(), "epoch": str(epoch)}
    with open(path, "wb") as f:
        f.write(save(tensors, metadata={**header, "sha256": digest(tensors, header)}))


_UNVERIFIED = set()  # older checkpoints already said to be unverified in their header, by path


def _verified(path, hint=""):
    """(metadata, tensors) of the checkpoint at path once its SHA-256 matches: the tensors and (format 3)
    the header. A checkpoint without its digest, of another format, or whose digest differs is refused."""
    try:
        with safe_open(str(path), "np") as stored:
            metadata = stored.metadata() or {}
            tensors = {name: stored.get_tensor(name) for name in stored.keys()}
    except Exception as error:  # safetensors raises its own types for truncated files
        raise CheckpointError(f"{path} is damaged or truncated ({str(error)[:200]})") from None
    found = metadata.get("format", "none")
    if not found.startswith("aevb-checkpoint-"):
        raise CheckpointError(f"{path} is not an aevb checkpoint")
    if found not in (FORMAT, OLDER):
        raise CheckpointError(f"{path} has format {found[:40]}; this aevb reads {FORMAT}. {hint}".strip())
    if "sha256" not in metadata or any(key not in metadata for key in HEADER):
        raise CheckpointError(f"{path} is damaged: its digest or header is missing, so its tensors and settings "
                              f"cannot be verified. {hint}".strip())
    if digest(tensors, metadata if found == FORMAT else None) != metadata["sha256"]:
        raise CheckpointError(f"{path} is damaged: its {'header or ' if found == FORMAT else ''}tensors do not "
                              f"match the SHA-256 stored with them. {hint}".strip())
    if found == OLDER and str(path) not in _UNVERIFIED:
        _UNVERIFIED.add(str(path))
        files.warn(f"{path} was written by an older aevb ({OLDER}): its tensors are verified, its stored settings "
                   "and epoch are not (the next checkpoint written covers them)")
    return metadata, tensors


def read_config(path, hint="", data=True):
    """(Config, epoch) from the checkpoint at path, verified by its digest; hint is added to the message of a
    wrong format. data=False: the settings as stored, not checked against the dataset (Config.from_json)."""
    metadata, _ = _verified(path, hint)
    return _config_of(Path(path), metadata, data)


def _config_of(path, metadata, data):
    try:
        dataset = json.loads(metadata["config"]).get("dataset", "mnist")
    except (KeyError, ValueError, AttributeError) as error:
        raise CheckpointError(f"{path} holds an unreadable config ({error})") from None
    try:  # the checkpoint is fine where only the run's data file has gone or changed
        datasets.get(dataset) if data else None
    except DataError as error:
        raise DataError(f"the data of {path.parent} cannot be read: {error}") from None
    try:
        return Config.from_json(metadata["config"], data), int(metadata["epoch"])
    except ConfigError as error:
        if str(dataset).startswith("npz:"):  # a file of the user's, which may have shrunk since
            raise DataError(f"the settings stored in {path} do not fit {dataset} as it is now ({error}); "
                            "the file has changed since the run was trained") from None
        raise CheckpointError(f"{path} holds an unreadable config ({error})") from None
    except (KeyError, ValueError) as error:
        raise CheckpointError(f"{path} holds an unreadable config ({error})") from None


def read(path, template, hint=""):
    """(config, params, opt_state, epoch). template(config) gives the (params, opt_state) pytrees
    whose structure, shapes and dtypes the stored tensors must have; every tensor must be finite.
    path: the checkpoint file; hint: added to the error's message (what to do)."""
    metadata, tensors = _verified(path, hint)
    config, epoch = _config_of(Path(path), metadata, True)
    params_template, opt_template = template(config)
    params = _unflatten(params_template, "", tensors, path)
    return config, params, _unflatten(opt_template, "optimizer", tensors, path), epoch


# ---- in a run directory, and the resume policy ----------------------------------------------------------


def save_checkpoint(run_dir, config, params, opt_state, epoch):
    """Writes the run's checkpoint (config, params, opt_state, epoch) atomically."""
    files.atomic_write(Path(run_dir) / files.CHECKPOINT, lambda tmp: write(tmp, config, params, opt_state, epoch))


def read_checkpoint_config(run_dir, data=True):
    """(Config, epoch) stored in a run's checkpoint (data: see read_config).
    Raises CheckpointError where there is none."""
    path = Path(run_dir) / files.CHECKPOINT
    if not Path(run_dir).is_dir():
        raise CheckpointError(f"run directory {run_dir} does not exist")
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist (train first: aevb train --name {Path(run_dir).name})")
    return read_config(path, _retrain_hint(run_dir), data)


def _retrain_hint(run_dir):
    return f"Train the run again (aevb train --name {Path(run_dir).name} --overwrite)"


def load_checkpoint(run_dir, template):
    """(config, params, opt_state, epoch); see read.
    template: as read takes it."""
    read_checkpoint_config(run_dir)  # the clear messages for a missing run or checkpoint
    return read(Path(run_dir) / files.CHECKPOINT, template, _retrain_hint(run_dir))


def resolve(run_dir, settings, mode):
    """(config, resume): what to train in run_dir, decided before anything is loaded or written.

    settings: a Config, or a dict of the settings given (the rest from the defaults, or from the
    checkpoint when resuming). mode: "new" (refuses a run that has a checkpoint), "resume"
    (continues the checkpoint; only epochs may change, and not below the checkpoint's), "auto"
    (resume if there is a checkpoint, else new) or "overwrite" (start again).
    Raises CheckpointError for a mode the checkpoint refuses.
    """
    given = dataclasses.asdict(settings) if isinstance(settings, Config) else dict(settings)
    present = files.has_checkpoint(run_dir)
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

