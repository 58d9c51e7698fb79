"""Training: objectives by name, one jit-compiled epoch (lax.scan over Adam steps), the loop.

Every random draw comes from keys folded from (seed, epoch), so a resumed run repeats exactly
the draws of an uninterrupted one and ends at the same parameters bit for bit.
"""

import math
import signal
import sys
import threading
import time

import jax
import jax.numpy as jnp
import optax
from tqdm.auto import tqdm

from . import data, datasets, evaluate, exact, model, networks, rundir
from .config import ConfigError

# name -> (key, net, params, x (B, D), num_samples) -> per-image estimates (B,) to maximize.
OBJECTIVES = {
    "elbo": model.elbo_per_image,  # the assignment's single-sample estimator (the default)
    "elbo-analytic-kl": model.elbo_analytic_kl_per_image,
}


class TrainingDiverged(RuntimeError):
    """The loss or the parameters became NaN or inf."""


def optimizer(config):
    return optax.adam(config.learning_rate)


def init_state(config):
    """(params, opt_state) at the start of training, from the config's seed."""
    data_dim = math.prod(datasets.DATASETS[config.dataset].image_shape)
    params = networks.get(config.architecture).init(jax.random.PRNGKey(config.seed), data_dim, config)
    return params, optimizer(config).init(params)


def state_template(config):
    """The shapes and dtypes of init_state(config), computed without computing it."""
    return jax.eval_shape(lambda: init_state(config))


def restore(run_dir):
    """(config, params, opt_state, epoch) from run_dir's checkpoint."""
    return rundir.load_checkpoint(run_dir, state_template)


def epoch_keys(config, epoch):
    """(shuffle key, step keys) for a 1-based epoch: derived, never stored."""
    shuffle_key, step_key = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(config.seed), epoch))
    return shuffle_key, step_key


def make_step(config):
    net, opt, objective = networks.get(config.architecture), optimizer(config), OBJECTIVES[config.objective]

    def loss(params, batch, key):
        return -jnp.mean(objective(key, net, params, batch, config.num_samples))

    def step(params, opt_state, batch, key):
        """One Adam step on a (B, D) batch, all in the caller's compiled region."""
        neg_objective, grads = jax.value_and_grad(loss)(params, batch, key)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, {"objective": -neg_objective}

    return step


def make_epoch(config):
    """epoch(params, opt_state, x_train, epoch) -> (params, opt_state, metrics), one jit call."""
    step = make_step(config)

    @jax.jit
    def epoch(params, opt_state, x_train, epoch_number):
        shuffle_key, step_key = epoch_keys(config, epoch_number)
        batches = data.shuffled_batches(shuffle_key, x_train, config.batch_size)  # (steps, B, D)
        keys = jax.random.split(step_key, batches.shape[0])

        def body(carry, inputs):
            params, opt_state = carry
            params, opt_state, metrics = step(params, opt_state, *inputs)
            return (params, opt_state), metrics["objective"]

        (params, opt_state), objectives = jax.lax.scan(body, (params, opt_state), (batches, keys))
        leaves = jax.tree_util.tree_leaves((params, opt_state))
        finite = jnp.all(jnp.isfinite(objectives)) & jnp.all(jnp.array([jnp.all(jnp.isfinite(x)) for x in leaves]))
        return params, opt_state, {"train_objective": jnp.mean(objectives), "finite": finite}

    return epoch


class Interrupted(RuntimeError):
    """Training was stopped at once (a second Ctrl-C or SIGTERM); the message says what was kept."""


class _StopRequest:
    """Ctrl-C or SIGTERM (what schedulers and kill send) sets a flag: the loop saves after the epoch
    in flight and exits cleanly. A second one stops at once (KeyboardInterrupt)."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.requested = False
        self.active = threading.current_thread() is threading.main_thread()  # signals reach the main thread only

    def __enter__(self):
        if self.active:
            self.previous = {number: signal.signal(number, self._handle) for number in self.SIGNALS}
        return self

    def _handle(self, signum, frame):
        if self.requested:  # the second one: the user insists
            raise KeyboardInterrupt
        self.requested = True
        print(f"\naevb: {signal.Signals(signum).name}: saving after the epoch in flight, then stopping "
              "(send it again to stop at once)", file=sys.stderr, flush=True)

    def __exit__(self, *exc):
        if self.active:
            for number, handler in self.previous.items():
                signal.signal(number, handler)


def _kept(run_dir, last_saved):
    if last_saved is None:
        return f"no checkpoint had been saved in {run_dir} yet"
    return f"the checkpoint of epoch {last_saved} in {run_dir} is kept"


def train(config, run_dir, split, resume=False, progress=True):
    """Trains config on split in run_dir; returns a dict with 'status' ("done" or "interrupted").

    resume: continue from run_dir's checkpoint (aevb.rundir.resolve has checked that it fits).
    A checkpoint is written only when the parameters, Adam's state and the epoch's objectives are
    finite: otherwise TrainingDiverged names the epoch and the last good checkpoint. A second Ctrl-C
    or SIGTERM raises Interrupted, naming what was kept.
    """
    if len(split.x_train) < config.batch_size:
        raise ConfigError(f"batch size {config.batch_size} exceeds the {len(split.x_train)} training images")
    if resume:
        _, params, opt_state, start = restore(run_dir)
        if start >= config.epochs:
            return {"status": "done", "epoch": start, "config": config, "params": params, "trained_now": 0}
    else:
        params, opt_state = init_state(config)
        start = 0
    rundir.write_config(run_dir, config)
    x_train, x_test = jnp.asarray(split.x_train), jnp.asarray(split.x_test)
    net = networks.get(config.architecture)
    history = rundir.read_metrics(run_dir, start)  # drop epochs after the checkpoint we resume from
    rundir.write_metrics(run_dir, history)
    epoch_fn = make_epoch(config)
    images_per_epoch = (x_train.shape[0] // config.batch_size) * config.batch_size
    status, epoch, last_saved = "done", start, start if resume else None
    bar = tqdm(range(start + 1, config.epochs + 1), initial=start, total=config.epochs, desc="train",
               unit="epoch", disable=not progress, dynamic_ncols=True)
    try:
        with _StopRequest() as stop:
            for epoch in bar:
                began = time.perf_counter()
                new_params, new_opt_state, metrics = epoch_fn(params, opt_state, x_train, epoch)
                train_objective = float(metrics["train_objective"])
                elapsed = time.perf_counter() - began
                # The curve's test ELBO: one sample per image with evaluation's fixed key.
                test_elbo = float(evaluate.elbo_per_image(net, new_params, x_test, 1).mean()) if bool(
                    metrics["finite"]) else math.nan
                if not math.isfinite(test_elbo):
                    raise TrainingDiverged(f"training diverged at epoch {epoch}: the objective, the parameters or the "
                                           f"test ELBO became NaN or inf; {_kept(run_dir, last_saved)}. "
                                           "A smaller --learning-rate may help")
                params, opt_state = new_params, new_opt_state
                row = {"epoch": epoch, "train_elbo": train_objective, "test_elbo": test_elbo, "seconds": elapsed}
                if config.latent_dim == 2 and exact.tracked(epoch, config.log_px_every):
                    began = time.perf_counter()
                    row["tracked"] = {**exact.track(net, params, x_test[: exact.TRACKED_IMAGES]),
                                      "images": min(exact.TRACKED_IMAGES, len(x_test)),
                                      "seconds": time.perf_counter() - began}
                rundir.append_metrics(run_dir, row)
                bar.set_postfix(train_elbo=f"{train_objective:.2f}", test_elbo=f"{test_elbo:.2f}",
                                images_per_s=f"{images_per_epoch / elapsed:.0f}")
                if epoch % config.checkpoint_every == 0 or epoch == config.epochs or stop.requested:
                    rundir.save_checkpoint(run_dir, config, params, opt_state, epoch)
                    last_saved = epoch
                if stop.requested:
                    status = "interrupted"
                    break
    except KeyboardInterrupt:
        raise Interrupted(f"stopped at once in epoch {epoch}; {_kept(run_dir, last_saved)}") from None
    finally:
        bar.close()
    history = rundir.read_metrics(run_dir, epoch)
    summary = rundir.training_summary(history, epoch, images_per_epoch)
    if len(history) < epoch:
        rundir.warn(f"{run_dir}: metrics.jsonl holds {len(history)} of the {epoch} epochs; the curves and the "
                    "training time cover those")
    rundir.update_summary(run_dir, summary)
    return {"status": status, "epoch": epoch, "config": config, "params": params, "trained_now": epoch - start,
            **summary}
