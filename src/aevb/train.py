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
import numpy as np
import optax
from tqdm.auto import tqdm

from . import data, datasets, evaluate, exact, model, networks, parallel, rundir
from .config import ConfigError

# name -> (key, net, params, x (B, D), num_samples) -> per-image estimates (B,) to maximize.
OBJECTIVES = {
    "elbo": model.elbo_per_image,  # the assignment's single-sample estimator (the default)
    "elbo-analytic-kl": model.elbo_analytic_kl_per_image,
    "iwae": model.iwae_per_image,  # Burda et al. (2016); K = num_samples (--k)
}


class TrainingDiverged(RuntimeError):
    """The loss or the parameters became NaN or inf."""


def optimizer(config):
    return optax.adam(config.learning_rate)


def init_state(config):
    """(params, opt_state) at the start of training, from the config's seed."""
    data_dim = math.prod(datasets.get(config.dataset).image_shape)
    params = networks.get(config.architecture).init(jax.random.PRNGKey(config.seed), data_dim, config)
    return params, optimizer(config).init(params)


def state_template(config):
    """The shapes and dtypes of init_state(config), computed without computing it."""
    return jax.eval_shape(lambda: init_state(config))


def restore(run_dir):
    """(config, params, opt_state, epoch) from run_dir's checkpoint."""
    return rundir.load_checkpoint(run_dir, state_template)


def epoch_keys(seed, epoch):
    """(shuffle key, step keys) for a 1-based epoch: derived from (seed, epoch), never stored."""
    shuffle_key, step_key = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(seed), epoch))
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


def make_epoch(config, seeds=None, devices=parallel.ONE):
    """epoch(params, opt_state, x_train, epoch) -> (params, opt_state, metrics), one jit call.

    seeds: several seeds of config trained together. The state then carries a leading seed axis
    (S, ...), epoch is a vector (S,) and a 4th argument active (S,) bool keeps the state of a seed
    that has finished: jax.vmap runs the seeds' epochs side by side in the one compiled epoch.
    devices: each batch is split over them (its images, B / count each) and the state replicated
    (x_train and the state must be placed so, see aevb.parallel); XLA all-reduces the gradients.
    """
    step = make_step(config)

    def one_epoch(params, opt_state, x_train, epoch_number, seed):
        shuffle_key, step_key = epoch_keys(seed, epoch_number)
        # Every device shuffles the whole (replicated) x_train alike and gathers its share of each batch.
        batches = devices.constrain(data.shuffled_batches(shuffle_key, x_train, config.batch_size), 1)  # (steps, B, D)
        keys = jax.random.split(step_key, batches.shape[0])

        def body(carry, inputs):
            params, opt_state = carry
            params, opt_state, metrics = step(params, opt_state, *inputs)
            return (params, opt_state), metrics["objective"]

        (params, opt_state), objectives = jax.lax.scan(body, (params, opt_state), (batches, keys))
        params, opt_state = devices.constrain_replicated((params, opt_state))
        leaves = jax.tree_util.tree_leaves((params, opt_state))
        finite = jnp.all(jnp.isfinite(objectives)) & jnp.all(jnp.array([jnp.all(jnp.isfinite(x)) for x in leaves]))
        return params, opt_state, {"train_objective": jnp.mean(objectives), "finite": finite}

    if seeds is None:
        return jax.jit(lambda params, opt_state, x_train, epoch_number: one_epoch(params, opt_state, x_train,
                                                                                  epoch_number, config.seed))
    seed_vector = jnp.asarray(seeds, dtype=jnp.uint32)  # (S,)

    @jax.jit
    def group_epoch(params, opt_state, x_train, epoch_numbers, active):
        new_params, new_opt_state, metrics = jax.vmap(one_epoch, in_axes=(0, 0, None, 0, 0))(
            params, opt_state, x_train, epoch_numbers, seed_vector)
        return (*keep_where(active, (new_params, new_opt_state), (params, opt_state)), metrics)

    return group_epoch


def keep_where(chosen, new, old):
    """new's entries for the seeds where chosen (S,) is True, old's elsewhere: stacked pytrees (S, ...)."""
    def pick(a, b):
        return jnp.where(chosen.reshape((-1,) + (1,) * (a.ndim - 1)), a, b)

    return jax.tree_util.tree_map(pick, new, old)


def stack(trees):
    """Pytrees of the same structure -> one pytree with a leading axis (S, ...)."""
    return jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *trees)


def member(tree, i):
    """The i-th pytree of a stacked one."""
    return jax.tree_util.tree_map(lambda leaf: leaf[i], tree)


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


class _Seed:
    """One run of a group being trained: where it goes and how far it is."""

    def __init__(self, config, run_dir, resume, devices):
        self.config, self.run_dir = config, run_dir
        if resume and devices.writer:
            _, self.params, self.opt_state, self.start = restore(run_dir)
        else:
            (self.params, self.opt_state), self.start = init_state(config), 0
        if devices.processes > 1:  # every process starts from process 0's state: it alone reads the run
            self.params, self.opt_state, start = devices.broadcast((self.params, self.opt_state, np.int64(self.start)))
            self.start = int(start)
        self.epoch, self.last_saved, self.diverged = self.start, self.start if resume else None, None

    @property
    def active(self):
        return self.diverged is None and self.epoch < self.config.epochs


def train(config, run_dir, split, resume=False, progress=True, devices=parallel.ONE):
    """Trains config on split in run_dir; returns a dict with 'status' ("done" or "interrupted").

    resume: continue from run_dir's checkpoint (aevb.rundir.resolve has checked that it fits).
    A checkpoint is written only when the parameters, Adam's state and the epoch's objectives are
    finite: otherwise TrainingDiverged names the epoch and the last good checkpoint. A second Ctrl-C
    or SIGTERM raises Interrupted, naming what was kept. devices: see make_epoch; with several
    processes each calls this alike, and process 0 alone reads and writes run_dir.
    """
    return train_group([config], [run_dir], split, [resume], progress, devices)[0]


def train_group(configs, run_dirs, split, resume, progress=True, devices=parallel.ONE):
    """Trains configs that differ only in their seed together, each into its run directory, in
    one compiled epoch (vmap over the seeds); returns train's result dict for each.

    Each seed gets the draws and, within float rounding, the parameters it gets trained alone.
    Seeds may resume from different epochs: one that has finished keeps its state. A seed that
    diverges stops (its last good checkpoint is kept) while the others go on; TrainingDiverged
    then names it at the end.
    """
    config = configs[0]
    if len(split.x_train) < config.batch_size:
        raise ConfigError(f"batch size {config.batch_size} exceeds the {len(split.x_train)} training images")
    if config.batch_size % devices.count:
        raise ConfigError(f"batch size {config.batch_size} is not a multiple of the {devices.count} devices: each "
                          "takes an equal share of every batch (choose --batch-size or --devices to fit)")
    seeds = [_Seed(c, d, r, devices) for c, d, r in zip(configs, run_dirs, resume, strict=True)]
    grouped = len(seeds) > 1
    x_train, x_test = devices.replicate(jnp.asarray(split.x_train)), jnp.asarray(split.x_test)
    net = networks.get(config.architecture)
    for seed in (s for s in seeds if s.active and devices.writer):  # a finished run is left as it is
        rundir.write_config(seed.run_dir, seed.config)
        rundir.write_metrics(seed.run_dir, rundir.read_metrics(seed.run_dir, seed.start))  # drop epochs after it
    if grouped:
        epoch_fn = make_epoch(config, tuple(c.seed for c in configs), devices)
        params, opt_state = stack([s.params for s in seeds]), stack([s.opt_state for s in seeds])
    else:
        epoch_fn, params, opt_state = make_epoch(config, devices=devices), seeds[0].params, seeds[0].opt_state
    params, opt_state = devices.replicate((params, opt_state))

    def of(tree, i):  # seed i's part of the state: stacked when grouped, the state itself when not
        return member(tree, i) if grouped else tree

    images_per_epoch = (x_train.shape[0] // config.batch_size) * config.batch_size
    first, last = min(s.epoch for s in seeds), max(c.epochs for c in configs)
    bar = tqdm(range(first + 1, last + 1), initial=first, total=last, unit="epoch", dynamic_ncols=True,
               desc=f"train seeds {','.join(str(c.seed) for c in configs)}" if grouped else "train",
               disable=not progress)
    status = "done"
    finished = [s.epoch for s in seeds]  # the epochs (params, opt_state) hold: every process finished them
    try:
        with _StopRequest() as stop:
            for _ in bar:
                running = [s for s in seeds if s.active]
                if not running:
                    break
                began = time.perf_counter()
                if grouped:
                    active = np.array([s.active for s in seeds])
                    new_params, new_opt_state, metrics = epoch_fn(params, opt_state, x_train,
                                                                  np.array([s.epoch + 1 for s in seeds]), active)
                else:
                    new_params, new_opt_state, metrics = epoch_fn(params, opt_state, x_train, seeds[0].epoch + 1)
                train_objectives = [float(v) for v in jnp.atleast_1d(metrics["train_objective"])]
                finite = [bool(v) for v in jnp.atleast_1d(metrics["finite"])]
                elapsed = time.perf_counter() - began
                for i, seed in enumerate(seeds):
                    if seed in running:
                        _record(seed, of(new_params, i), train_objectives[i], finite[i], elapsed, net, x_test, devices)
                        bar.set_postfix(train_elbo=f"{train_objectives[i]:.2f}",
                                        images_per_s=f"{len(running) * images_per_epoch / elapsed:.0f}")
                if not grouped and seeds[0].diverged:
                    raise TrainingDiverged(seeds[0].diverged)
                # The new state where a seed trained and stayed finite; the old one where it diverged.
                kept = np.array([s.diverged is None for s in seeds])
                params, opt_state = keep_where(kept, (new_params, new_opt_state), (params, opt_state)) if grouped \
                    else (new_params, new_opt_state)
                finished = [s.epoch for s in seeds]
                stopping = devices.any(stop.requested)  # a signal to one process stops them all, at the same epoch
                for i, seed in enumerate(seeds):
                    epoch_done = seed in running and seed.diverged is None
                    if epoch_done and (seed.epoch % seed.config.checkpoint_every == 0 or not seed.active
                                       or stopping):
                        if devices.writer:
                            rundir.save_checkpoint(seed.run_dir, seed.config, *of((params, opt_state), i), seed.epoch)
                        seed.last_saved = seed.epoch
                if stopping:
                    status = "interrupted"
                    break
    except KeyboardInterrupt:
        saved = "; ".join(_kept(s.run_dir, s.last_saved) for s in seeds)
        raise Interrupted(f"stopped at once in epoch {max(s.epoch for s in seeds) + 1}; {saved}") from None
    except jax.errors.JaxRuntimeError as error:
        if devices.processes == 1:
            raise
        raise parallel.ProcessesError(_peer_lost(error, seeds, (params, opt_state), finished, grouped,
                                                 devices)) from None
    finally:
        bar.close()
    results = [_finish(seed, devices.local(of(params, i)), status, images_per_epoch,
                       [c.seed for c in configs] if grouped else None, devices) for i, seed in enumerate(seeds)]
    diverged = [s.diverged for s in seeds if s.diverged]
    if diverged:
        raise TrainingDiverged("; ".join(diverged))
    return results


def _peer_lost(error, seeds, state, epochs, grouped, devices):
    """Another process died in the middle of training (its collectives fail here): process 0 saves
    the last epoch that every process finished, from its own copy of the state; the message."""
    saved = []
    if devices.writer:
        host = devices.local(state)  # replicated: this process's copy, no collective needed
        for i, (seed, epoch) in enumerate(zip(seeds, epochs, strict=True)):
            if epoch > seed.start and epoch != seed.last_saved:
                rundir.save_checkpoint(seed.run_dir, seed.config, *(member(host, i) if grouped else host), epoch)
                seed.last_saved = epoch
            saved.append(_kept(seed.run_dir, seed.last_saved))
    return (f"another process of the job stopped during training ({parallel.first_line(error)}); "
            + ("; ".join(saved) if saved else "process 0 keeps the last epoch all finished")
            + ". Start every process again with --resume")


def _record(seed, params, train_objective, finite, elapsed, net, x_test, devices):
    """The epoch a seed has just trained: its metrics row, or the reason it diverged."""
    epoch = seed.epoch + 1
    # The curve's test ELBO: one sample per image with evaluation's fixed key.
    test_elbo = float(evaluate.elbo_per_image(net, params, x_test, 1, devices=devices).mean()) if finite else math.nan
    if not math.isfinite(test_elbo):
        seed.diverged = (f"training diverged at epoch {epoch}: the objective, the parameters or the test ELBO "
                         f"became NaN or inf; {_kept(seed.run_dir, seed.last_saved)}. A smaller --learning-rate "
                         "may help")
        return
    seed.epoch = epoch
    row = {"epoch": epoch, "train_elbo": train_objective, "test_elbo": test_elbo, "seconds": elapsed}
    if seed.config.latent_dim == 2 and exact.tracked(epoch, seed.config.log_px_every):
        began = time.perf_counter()
        row["tracked"] = {**exact.track(net, params, x_test[: exact.TRACKED_IMAGES], devices),
                          "images": min(exact.TRACKED_IMAGES, len(x_test)), "seconds": time.perf_counter() - began}
    if devices.writer:
        rundir.append_metrics(seed.run_dir, row)


def _finish(seed, params, status, images_per_epoch, group_seeds, devices):
    """The seed's training summary into its summary.json (process 0); train's result dict."""
    result = {"status": status, "epoch": seed.epoch, "config": seed.config, "params": params,
              "trained_now": seed.epoch - seed.start, "run_dir": seed.run_dir}
    if not devices.writer:
        return result
    history = rundir.read_metrics(seed.run_dir, seed.epoch)
    summary = rundir.training_summary(history, seed.epoch, images_per_epoch) if history else {}
    if len(history) < seed.epoch:
        rundir.warn(f"{seed.run_dir}: metrics.jsonl holds {len(history)} of the {seed.epoch} epochs; the curves "
                    "and the training time cover those")
    if group_seeds is not None and seed.epoch > seed.start:
        summary["trained_with_seeds"] = group_seeds  # its seconds are those of the group's epochs
    if summary and seed.epoch > seed.start:
        summary["trained_on"] = devices.describe()
    if summary and not seed.diverged and seed.epoch > seed.start:  # a finished run is left as it is
        rundir.update_summary(seed.run_dir, summary)
    return {**result, **summary}
