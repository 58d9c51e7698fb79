"""Training: one jit-compiled epoch (lax.scan over Adam steps), checkpoints, resume.

A run directory holds config.json, params.safetensors (the checkpoint), metrics.jsonl and
summary.json. Every random draw comes from keys folded from (seed, epoch), so a resumed run
repeats exactly the draws of an uninterrupted one and ends at the same parameters bit for bit.
"""

import dataclasses
import json
import os
import signal
import tempfile
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from safetensors import safe_open
from safetensors.numpy import save_file
from tqdm.auto import tqdm

from . import data, model
from .config import Config

CHECKPOINT = "params.safetensors"
FORMAT = "aevb-checkpoint-1"
EVAL_KEY = jax.random.PRNGKey(1)  # fixed, so per-epoch test ELBOs compare across epochs and runs


class CheckpointError(RuntimeError):
    """A checkpoint is missing, truncated or does not match the config."""


class TrainingDiverged(RuntimeError):
    """The loss or the parameters became NaN or inf."""


def optimizer(config):
    return optax.adam(config.learning_rate)


def init_state(config):
    params = model.init_params(jax.random.PRNGKey(config.seed), config.latent_dim, config.hidden_dim)
    return params, optimizer(config).init(params)


def epoch_keys(config, epoch):
    """(shuffle key, step keys) for a 1-based epoch: derived, never stored."""
    shuffle_key, step_key = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(config.seed), epoch))
    return shuffle_key, step_key


def make_step(config):
    opt = optimizer(config)

    def step(params, opt_state, batch, key):
        """One Adam step on -ELBO of a (B, 784) batch, all in the caller's compiled region."""
        neg_elbo, grads = jax.value_and_grad(model.loss)(params, batch, key, config.num_samples, config.kl)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, {"elbo": -neg_elbo}

    return step


def make_epoch(config):
    """epoch(params, opt_state, x_train, epoch) -> (params, opt_state, metrics), one jit call."""
    step = make_step(config)

    @jax.jit
    def epoch(params, opt_state, x_train, epoch_number):
        shuffle_key, step_key = epoch_keys(config, epoch_number)
        batches = data.shuffled_batches(shuffle_key, x_train, config.batch_size)  # (steps, B, 784)
        keys = jax.random.split(step_key, batches.shape[0])

        def body(carry, inputs):
            params, opt_state = carry
            params, opt_state, metrics = step(params, opt_state, *inputs)
            return (params, opt_state), metrics["elbo"]

        (params, opt_state), elbos = jax.lax.scan(body, (params, opt_state), (batches, keys))
        finite = jnp.all(jnp.isfinite(elbos)) & jnp.all(
            jnp.array([jnp.all(jnp.isfinite(leaf)) for leaf in jax.tree_util.tree_leaves(params)]))
        return params, opt_state, {"train_elbo": jnp.mean(elbos), "finite": finite}

    return epoch


@jax.jit
def _batch_elbo(params, x, key):
    return model.elbo_per_image(key, params["encoder"], params["decoder"], x)


def quick_elbo(params, x, key=EVAL_KEY, chunk=5000):
    """Single-sample ELBO averaged over all of x, nats per image (for per-epoch curves)."""
    total = 0.0
    for start, stop in data.chunks(x.shape[0], chunk):
        total += float(jnp.sum(_batch_elbo(params, x[start:stop], jax.random.fold_in(key, start))))
    return total / x.shape[0]


# ---- checkpoints ----------------------------------------------------------------------------


def _flatten(tree, prefix):
    flat = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        parts = [prefix] if prefix else []
        for entry in path:
            parts.append(str(getattr(entry, "key", getattr(entry, "name", getattr(entry, "idx", entry)))))
        flat[".".join(parts)] = np.asarray(leaf)
    return flat


def _unflatten(template, prefix, tensors, where):
    names = list(_flatten(template, prefix))
    leaves, treedef = jax.tree_util.tree_flatten(template)
    restored = []
    for name, leaf in zip(names, leaves, strict=True):
        if name not in tensors:
            raise CheckpointError(f"{where}: tensor {name} is missing")
        value = tensors[name]
        if value.shape != leaf.shape or value.dtype != leaf.dtype:
            raise CheckpointError(f"{where}: tensor {name} has shape {value.shape} {value.dtype}, the config "
                                  f"needs {leaf.shape} {leaf.dtype}")
        restored.append(jnp.asarray(value))
    return jax.tree_util.tree_unflatten(treedef, restored)


def _atomic_write(path, write):
    """write(temp_path) then rename: a kill at any moment leaves the old file or the new one."""
    path = Path(path)
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


def atomic_write_text(path, text):
    _atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def save_checkpoint(run_dir, config, params, opt_state, epoch):
    """params.safetensors: weights by readable names (encoder.hidden.weight, ...), Adam's state
    under optimizer.*, and the config and epoch in the metadata. Data, never code."""
    tensors = {**_flatten(params, ""), **_flatten(opt_state, "optimizer")}
    metadata = {"format": FORMAT, "config": config.to_json(), "epoch": str(epoch)}
    _atomic_write(Path(run_dir) / CHECKPOINT, lambda tmp: save_file(tensors, tmp, metadata=metadata))


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
        if metadata.get("format") != FORMAT:
            raise CheckpointError(f"{path} is not an aevb checkpoint")
        return Config.from_json(metadata["config"]), int(metadata["epoch"])
    except CheckpointError:
        raise
    except Exception as error:  # safetensors raises its own types for truncated files
        raise CheckpointError(f"{path} is damaged or truncated ({error})") from None


def load_checkpoint(run_dir, config=None):
    """(config, params, opt_state, epoch); config, if given, must match the stored one."""
    stored_config, epoch = read_checkpoint_config(run_dir)
    path = Path(run_dir) / CHECKPOINT
    if config is not None and config != stored_config:
        raise CheckpointError(f"{path} was trained with a different config: {_config_diff(stored_config, config)}")
    config = stored_config
    try:
        with safe_open(str(path), "np") as stored:
            tensors = {name: stored.get_tensor(name) for name in stored.keys()}
    except Exception as error:
        raise CheckpointError(f"{path} is damaged or truncated ({error})") from None
    params_template, opt_template = jax.eval_shape(lambda: init_state(config))
    params = _unflatten(params_template, "", tensors, path)
    opt_state = _unflatten(opt_template, "optimizer", tensors, path)
    return config, params, opt_state, epoch


def _config_diff(a, b):
    da, db = json.loads(a.to_json()), json.loads(b.to_json())
    return ", ".join(f"{k} {da[k]!r} != {db[k]!r}" for k in sorted(da) if da[k] != db[k])


# ---- the loop ---------------------------------------------------------------------------------


class _StopRequest:
    """Ctrl-C sets a flag; the loop saves after the epoch in flight and exits cleanly."""

    def __init__(self):
        self.requested = False

    def __enter__(self):
        self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:  # a second Ctrl-C: the user insists
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        signal.signal(signal.SIGINT, self.previous)


def read_metrics(run_dir):
    """The rows of run_dir/metrics.jsonl, one per trained epoch."""
    return _read_metrics(Path(run_dir) / "metrics.jsonl", float("inf"))


def _read_metrics(path, up_to_epoch):
    if not path.is_file():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [row for row in rows if row["epoch"] <= up_to_epoch]


def train(config, run_dir, resume=False, data_dir=None, progress=True, datasets=None):
    """Trains config in run_dir; returns a dict with 'status' ("done" or "interrupted").

    Raises TrainingDiverged with the epoch named if the loss turns NaN or inf (the last good
    checkpoint stays), CheckpointError for a checkpoint that can't be resumed.
    """
    run_dir = Path(run_dir)
    if resume:
        stored, params, opt_state, start = load_checkpoint(run_dir)
        # A resumed run keeps its config; only a different number of epochs may be asked for.
        if config is not None and dataclasses.replace(config, epochs=stored.epochs) != stored:
            raise CheckpointError(f"{run_dir} was trained with a different config: {_config_diff(stored, config)}")
        config = config or stored
        if config.epochs < start:
            raise CheckpointError(f"{run_dir} is already at epoch {start}; --epochs {config.epochs} would go back")
    else:
        if (run_dir / CHECKPOINT).exists():
            raise CheckpointError(f"{run_dir} already holds a checkpoint; use --resume to continue it "
                                  "or --overwrite to start again")
        run_dir.mkdir(parents=True, exist_ok=True)
        params, opt_state = init_state(config)
        start = 0
    atomic_write_text(run_dir / "config.json", json.dumps(json.loads(config.to_json()), indent=2) + "\n")
    x_train, _, x_test, _ = datasets or data.load_for_config(config, data_dir)
    x_train, x_test = jnp.asarray(x_train), jnp.asarray(x_test)
    metrics_path = run_dir / "metrics.jsonl"
    history = _read_metrics(metrics_path, start)  # drop epochs after the checkpoint we resume from
    atomic_write_text(metrics_path, "".join(json.dumps(row) + "\n" for row in history))
    epoch_fn = make_epoch(config)
    images_per_epoch = (x_train.shape[0] // config.batch_size) * config.batch_size
    seconds = sum(row["seconds"] for row in history)
    status = "done"
    bar = tqdm(range(start + 1, config.epochs + 1), initial=start, total=config.epochs, desc="train",
               unit="epoch", disable=not progress, dynamic_ncols=True)
    with _StopRequest() as stop:
        for epoch in bar:
            began = time.perf_counter()
            new_params, new_opt_state, metrics = epoch_fn(params, opt_state, x_train, epoch)
            train_elbo = float(metrics["train_elbo"])
            elapsed = time.perf_counter() - began
            if not bool(metrics["finite"]):
                bar.close()
                raise TrainingDiverged(f"training diverged at epoch {epoch}: the loss or the parameters became "
                                       f"NaN or inf; the last good checkpoint in {run_dir} stays")
            params, opt_state = new_params, new_opt_state
            seconds += elapsed
            row = {"epoch": epoch, "train_elbo": train_elbo, "test_elbo": quick_elbo(params, x_test),
                   "seconds": elapsed}
            with open(metrics_path, "a") as f:
                f.write(json.dumps(row) + "\n")
            bar.set_postfix(train_elbo=f"{train_elbo:.2f}", test_elbo=f"{row['test_elbo']:.2f}",
                            images_per_s=f"{images_per_epoch / elapsed:.0f}")
            if epoch % config.checkpoint_every == 0 or epoch == config.epochs or stop.requested:
                save_checkpoint(run_dir, config, params, opt_state, epoch)
            if stop.requested:
                status = "interrupted"
                break
    bar.close()
    history = _read_metrics(metrics_path, config.epochs)
    trained_epochs = len(history)
    summary = {
        "epochs": trained_epochs,
        "train_elbo_last_epoch": history[-1]["train_elbo"] if history else None,
        "training_seconds": seconds,
        "seconds_per_epoch": seconds / max(trained_epochs, 1),
        "images_per_second": images_per_epoch * trained_epochs / seconds if seconds else None,
    }
    update_summary(run_dir, summary)
    return {"status": status, "epoch": history[-1]["epoch"] if history else start, "config": config,
            "params": params, **summary}


def read_summary(run_dir):
    """run_dir/summary.json as a dict; {} before anything was evaluated."""
    path = Path(run_dir) / "summary.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def update_summary(run_dir, values):
    """Merges values into run_dir/summary.json (written atomically)."""
    path = Path(run_dir) / "summary.json"
    summary = read_summary(run_dir)
    summary.update(values)
    atomic_write_text(path, json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return summary
