"""What training compiles: the initial state with its optimizer's (aevb.training.optimizers), the step (with a
KL warm-up's weight), and one jit-compiled epoch (a lax.scan over Adam steps) for one seed or several side by
side, on one device or several (a batch split over a mesh).

Every random draw comes from keys folded from (seed, epoch), so a resumed run repeats exactly
the draws of an uninterrupted one and ends at the same parameters bit for bit. The objective is
picked by name from aevb.model.probability.OBJECTIVES.
"""

import math
import sys

import jax
import jax.numpy as jnp
import optax

from .. import parallel
from ..data import datasets, splits
from ..errors import ConfigError, TooBig, machine_memory
from ..model import densities, probability
from .optimizers import optimizer, steps_per_epoch


def kl_weight(config, step):
    """The KL term's weight at a 0-based optimizer step: rises linearly from 0 to 1 over kl_warmup epochs."""
    return jnp.minimum(1.0, step / (config.kl_warmup * steps_per_epoch(config)))


def init_state(config):
    """(params, opt_state) at the start of training, from the config's seed."""
    data_dim = math.prod(datasets.get(config.dataset).image_shape)
    params = config.network.init(jax.random.PRNGKey(config.seed), data_dim, config)
    return params, optimizer(config).init(params)


def state_bytes(config, seeds=1):
    """Bytes of the parameters and Adam's state of config (seeds of them), from their shapes alone
    (jax.eval_shape allocates nothing): what training holds at least twice over, old and new."""
    shapes = jax.eval_shape(lambda: init_state(config))
    return seeds * sum(leaf.size * leaf.dtype.itemsize for leaf in jax.tree_util.tree_leaves(shapes))


def check_memory(config, seeds=1):
    """Refuses, before anything is written, settings whose training state alone would not fit in this
    machine's memory: the state before and after a step, and the gradient (about 2.3 times the state). Raises TooBig."""
    need = 2.4 * state_bytes(config, seeds)
    have = machine_memory()
    if need > have:
        raise TooBig(f"the settings need about {need / 2**30:.1f} GiB for the parameters and Adam's state "
                          f"alone; this machine has {have / 2**30:.1f} GiB: choose a smaller --hidden-dim or "
                          "--latent-dim")


# XLA's compile seconds on this project's 2-core machine against the epoch program's operations (its
# lowered StableHLO's `=` lines), fitted to 1 to 100 seeds of --hidden 32 and 1 to 4 of 500: 1.6 s at 1423
# ops, 16.7 s at 29 225, 62 s at 76 737, 106 s at 95 785. It grows faster than the size (the scan's body holds
# every seed's step); a faster machine divides it.
COMPILE_SECONDS = (1.5, 3.4e-4, 8e-9)  # constant, per operation, per operation squared
MAX_COMPILE_SECONDS = 86400  # an estimate beyond a day is refused


def compile_estimate(config, seeds=1):
    """(operations, seconds) of compiling the epoch of seeds seeds of config, estimated before any
    state exists: the epochs of two and three seeds (or one) lowered on abstract shapes (jax.eval_shape:
    nothing allocated, under a second), each further seed adding what the third added (the count is then
    exact: a group's program is linear in its seeds), and COMPILE_SECONDS' fit."""
    data_dim = math.prod(datasets.get(config.dataset).image_shape)
    x_train = jax.ShapeDtypeStruct((config.train_size, data_dim), jnp.float32)

    def operations(count):
        if count == 1:
            return make_epoch(config).lower(*jax.eval_shape(lambda: init_state(config)), x_train, 1).as_text().count(" = ")
        state = jax.eval_shape(lambda: stack([init_state(config)] * count))
        lowered = make_epoch(config, tuple(range(count))).lower(*state, x_train, jnp.ones(count, jnp.int32),
                                                                 jnp.ones(count, bool))
        return lowered.as_text().count(" = ")

    if seeds == 1:
        ops = operations(1)
    else:
        two = operations(2)
        ops = two + (seeds - 2) * (operations(3) - two)
    constant, linear, square = COMPILE_SECONDS
    return ops, constant + linear * ops + square * ops**2


def compile_notice(config, seeds):
    """The compile's estimated length for the progress bar (' (about 2 min)'); when it is 30 s or more,
    also said at once in a line on stderr (before any state is made or file written). Raises ConfigError
    beyond MAX_COMPILE_SECONDS."""
    ops, seconds = compile_estimate(config, seeds)
    if seconds > MAX_COMPILE_SECONDS:
        raise ConfigError(f"the epoch of {seeds} seeds would be one program of about {ops:,} operations, whose compile "
                     f"is estimated at {seconds / 86400:.1f} days on a 2-core machine: train fewer seeds together "
                     "(several --seeds groups) or a smaller network")
    if seconds >= 30:
        print(f"aevb: the epoch of {seeds} seeds is one program of about {ops:,} operations; compiling it takes "
              f"about {seconds / 60:.1f} min on a 2-core machine, before the first epoch (Ctrl-C stops it)",
              file=sys.stderr, flush=True)
    return f" (about {seconds / 60:.0f} min)" if seconds >= 90 else f" (about {seconds:.0f} s)"


def epoch_keys(seed, epoch):
    """(shuffle key, step keys) for a 1-based epoch: derived from (seed, epoch), never stored."""
    shuffle_key, step_key = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(seed), epoch))
    return shuffle_key, step_key


def epoch_images(config, x_train, seed, epoch):
    """The training images of a 1-based epoch: x_train itself, or with dynamic binarization a fresh
    Bernoulli draw of its grey levels (N, D), keyed by (seed, epoch) apart from epoch_keys' two keys."""
    if config.binarization != "dynamic":
        return x_train
    key = jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(seed), epoch), 1)
    return densities.sample_bernoulli(key, x_train)


def make_step(config):
    """step(params, opt_state, batch (B, D), key, weight) -> (params, opt_state, {objective}) of config's objective."""
    net, opt, objective = config.network, optimizer(config), probability.OBJECTIVES[config.objective]

    def loss(params, batch, key, weight):
        extra = {} if weight is None else {"kl_weight": weight}
        return -jnp.mean(objective(key, net, params, batch, config.num_samples, **extra))

    def step(params, opt_state, batch, key, weight=None):
        """One optimizer step on a (B, D) batch, all in the caller's compiled region; weight: the KL
        term's (a warm-up), None for 1 as written."""
        neg_objective, grads = jax.value_and_grad(loss)(params, batch, key, weight)
        updates, opt_state = opt.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, {"objective": -neg_objective}

    return step


def make_epoch(config, seeds=None, devices=parallel.ONE):
    """epoch(params, opt_state, x_train, epoch) -> (params, opt_state, metrics), one jit call.

    seeds: several seeds of config trained together. The state then carries a leading seed axis
    (S, ...), epoch is a vector (S,) and a 4th argument active (S,) bool keeps the state of a seed
    that has finished. One scan runs the seeds' epochs side by side: each of its steps takes every
    seed's step in turn, with the very operations of that seed's run alone (plain matmuls, where
    jax.vmap would batch them), so a seed ends where it ends alone, bit for bit, and XLA may overlap
    the seeds' independent steps (bench.py: 6% faster than vmap on 3 seeds, 2 cores). The compiled
    program holds one step per seed.
    devices: each batch is split over them (its images, B / count each) and the state replicated
    (x_train and the state must be placed so, see aevb.parallel); XLA all-reduces the gradients.
    """
    step = make_step(config)

    def inputs_of(x_train, epoch_number, seed):
        """A seed's batches (steps, B, D) and step keys (steps,) for a 1-based epoch (and KL weights)."""
        shuffle_key, step_key = epoch_keys(seed, epoch_number)
        x_train = epoch_images(config, x_train, seed, epoch_number)  # (N, D)
        # Every device shuffles the whole (replicated) x_train alike and gathers its share of each batch.
        batches = splits.shuffled_batches(shuffle_key, x_train, config.batch_size)  # (steps, B, D)
        batches = devices.constrain(batches, 1)
        inputs = (batches, jax.random.split(step_key, batches.shape[0]))
        if config.kl_warmup:  # the KL weight of each step of this epoch, (steps,)
            inputs += (kl_weight(config, (epoch_number - 1) * batches.shape[0] + jnp.arange(batches.shape[0])),)
        return inputs

    def epochs(states, x_train, epoch_numbers, seed_list):
        """Each seed's epoch from its (params, opt_state) in states: [(params, opt_state, metrics)]."""
        inputs = tuple(inputs_of(x_train, e, s) for e, s in zip(epoch_numbers, seed_list, strict=True))

        def body(carry, inputs):
            stepped = [step(params, opt_state, *one) for (params, opt_state), one in zip(carry, inputs, strict=True)]
            return tuple((params, opt_state) for params, opt_state, _ in stepped), tuple(
                metrics["objective"] for _, _, metrics in stepped)

        states, objectives = jax.lax.scan(body, tuple(states), inputs)
        out = []
        for (params, opt_state), seed_objectives in zip(states, objectives, strict=True):
            params, opt_state = devices.constrain_replicated((params, opt_state))
            leaves = jax.tree_util.tree_leaves((params, opt_state))
            finite = jnp.all(jnp.isfinite(seed_objectives)) & jnp.all(jnp.array([jnp.all(jnp.isfinite(x))
                                                                                  for x in leaves]))
            out.append((params, opt_state, {"train_objective": jnp.mean(seed_objectives), "finite": finite}))
        return out

    if seeds is None:
        return jax.jit(lambda params, opt_state, x_train, epoch_number: epochs([(params, opt_state)], x_train,
                                                                              [epoch_number], [config.seed])[0])

    @jax.jit
    def group_epoch(params, opt_state, x_train, epoch_numbers, active):
        states = [(member(params, i), member(opt_state, i)) for i in range(len(seeds))]
        new = epochs(states, x_train, [epoch_numbers[i] for i in range(len(seeds))], seeds)
        new_params, new_opt_state, metrics = (stack([one[j] for one in new]) for j in range(3))
        return (*keep_where(active, (new_params, new_opt_state), (params, opt_state)), metrics)

    return group_epoch


def keep_where(chosen, new, old):
    """new's entries for the seeds where chosen (S,) is True, old's elsewhere: stacked pytrees (S, ...)."""
    def pick(a, b):
        return jnp.where(chosen.reshape((-1,) + (1,) * (a.ndim - 1)), a, b)

    return jax.tree_util.tree_map(pick, new, old)


def stack(trees):
    """Pytrees of the same structure -> one pytree with a leading axis (S, ...).
    trees: pytrees of the same structure."""
    return jax.tree_util.tree_map(lambda *leaves: jnp.stack(leaves), *trees)


def member(tree, i):
    """The i-th pytree of a stacked one.
    tree: a stacked pytree (S, ...); i: which."""
    return jax.tree_util.tree_map(lambda leaf: leaf[i], tree)

