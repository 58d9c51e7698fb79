"""The optimizers training can use, by Config.optimizer, on a step size that is a number or Burda et al.'s
schedule: Adam (with Config.adam_eps), Adagrad (Kingma & Welling 2013) and adam-normgrad, the VampPrior code's
AdamNormGrad (Tomczak & Welling 2018; github.com/jmtomczak/vae_vampprior, utils/optimizer.py): Adam on each
parameter array's gradient divided by that array's norm."""

import jax
import jax.numpy as jnp
import optax

# Burda et al. (2016), Section 5: "for i = 0..7, 3^i passes at learning rate 0.001 * 10^(-i/7)".
BURDA_STAGES = 8
BURDA_ENDS = tuple(sum(3**j for j in range(i + 1)) for i in range(BURDA_STAGES))  # last epoch of each: 1, 4, ..., 3280
NORM_FLOOR = 1e-7  # AdamNormGrad's: a gradient over (its norm + this), so a zero gradient stays zero


def steps_per_epoch(config):
    """Adam steps per epoch: whole batches of config.batch_size in the training images."""
    return config.train_size // config.batch_size


def learning_rate(config, epoch):
    """The step size during a 1-based epoch: config.learning_rate, or times 10^(-i/7) in stage i of burda's
    schedule (its last stage goes on after epoch 3280). epoch may be traced (an array)."""
    if config.lr_schedule == "constant":
        return config.learning_rate
    stage = jnp.sum(jnp.asarray(epoch)[..., None] > jnp.asarray(BURDA_ENDS[:-1]), axis=-1)  # stages finished
    return config.learning_rate * 10.0 ** (-stage / 7)


def schedule(config):
    """The optimizer's step size: a number, or optax's schedule of the step count (0-based) when the
    schedule is written in epochs."""
    if config.lr_schedule == "constant":
        return config.learning_rate
    steps = steps_per_epoch(config)
    return lambda count: learning_rate(config, count // steps + 1)


def normalized_gradients():
    """An optax transformation: each array of the gradient divided by (its Euclidean norm, all its entries
    together, + NORM_FLOOR), as AdamNormGrad does before its Adam step. Keeps no state."""
    def update(updates, state, params=None):
        return jax.tree.map(lambda g: g / (jnp.sqrt(jnp.sum(g**2)) + NORM_FLOOR), updates), state

    return optax.GradientTransformation(lambda params: optax.EmptyState(), update)


def optimizer(config):
    """The optax optimizer of config.optimizer on its step size (schedule): adam with adam_eps, adagrad, or
    adam-normgrad (normalized_gradients, then adam with adam_eps)."""
    rate = schedule(config)
    if config.optimizer == "adagrad":
        return optax.adagrad(rate)
    adam = optax.adam(rate, eps=config.adam_eps)
    return optax.chain(normalized_gradients(), adam) if config.optimizer == "adam-normgrad" else adam
