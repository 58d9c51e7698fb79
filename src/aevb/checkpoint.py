"""The checkpoint file format: safetensors with readable tensor names and the config as metadata.

Data, never code: the parameters by the names of their pytree keys (encoder.hidden.weight, ...),
Adam's state under optimizer.*, and in the metadata the format, the Config as JSON and the epoch.
Where the file lives is aevb.rundir's business.
"""

import jax
import jax.numpy as jnp
import numpy as np
from safetensors import safe_open
from safetensors.numpy import save

from .config import Config

FORMAT = "aevb-checkpoint-2"  # 2: objectives, datasets and networks by name (1 had `kl`)


class CheckpointError(RuntimeError):
    """A checkpoint is missing, damaged, or does not match what was asked for."""


def flatten(tree, prefix=""):
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


def write(path, config, params, opt_state, epoch):
    """Writes the checkpoint file at path (the caller makes it atomic). The bytes are made in memory
    and written by Python, so a full disk raises an OSError like any other file's."""
    tensors = {**flatten(params), **flatten(opt_state, "optimizer")}
    metadata = {"format": FORMAT, "config": config.to_json(), "epoch": str(epoch)}
    with open(path, "wb") as f:
        f.write(save(tensors, metadata=metadata))


def read_config(path, hint=""):
    """(Config, epoch) from the checkpoint at path; hint is added to the message of a wrong format."""
    try:
        with safe_open(str(path), "np") as stored:
            metadata = stored.metadata() or {}
    except Exception as error:  # safetensors raises its own types for truncated files
        raise CheckpointError(f"{path} is damaged or truncated ({error})") from None
    found = metadata.get("format", "none")
    if not found.startswith("aevb-checkpoint-"):
        raise CheckpointError(f"{path} is not an aevb checkpoint")
    if found != FORMAT:
        raise CheckpointError(f"{path} has format {found}; this aevb reads {FORMAT}. {hint}".strip())
    try:
        return Config.from_json(metadata["config"]), int(metadata["epoch"])
    except (KeyError, ValueError) as error:
        raise CheckpointError(f"{path} holds an unreadable config ({error})") from None


def read(path, template, hint=""):
    """(config, params, opt_state, epoch). template(config) gives the (params, opt_state) pytrees
    whose structure, shapes and dtypes the stored tensors must have; every tensor must be finite."""
    config, epoch = read_config(path, hint)
    try:
        with safe_open(str(path), "np") as stored:
            tensors = {name: stored.get_tensor(name) for name in stored.keys()}
    except Exception as error:
        raise CheckpointError(f"{path} is damaged or truncated ({error})") from None
    params_template, opt_template = template(config)
    params = _unflatten(params_template, "", tensors, path)
    return config, params, _unflatten(opt_template, "optimizer", tensors, path), epoch
