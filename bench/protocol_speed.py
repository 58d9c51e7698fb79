"""Seconds per epoch of the burda2016 network (784-200-200-50 tanh each way, dynamic binarization,
Adam with epsilon 1e-4, one-sample ELBO) at batch 20 and 100: aevb's compiled epoch against a plain
JAX scan epoch of the same network written here in a few lines, in the same session.

    .venv/bin/python bench/protocol_speed.py     (or as a stage of make bench)
"""

import json
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import optax

from aevb.config import Config
from aevb.data import splits
from aevb.training import compiled

N_TRAIN = 60000


def _config(batch_size):
    return Config(n_train=N_TRAIN, n_test=10000, test_split="official", hidden="200,200", latent_dim=50,
                  batch_size=batch_size, binarization="dynamic", adam_eps=1e-4, lr_schedule="burda")


def aevb_epoch_seconds(config, grey, epochs=3):
    params, opt_state = compiled.init_state(config)
    return median_epoch_seconds(compiled.make_epoch(config), params, opt_state, grey, epochs, number=int)


def plain_epoch_seconds(batch_size, grey, epochs=3):
    """The reference: the same layers, the same estimator, the same optimizer, nothing of aevb's."""
    sizes = [(784, 200), (200, 200), (200, 100), (50, 200), (200, 200), (200, 784)]
    keys = jax.random.split(jax.random.PRNGKey(0), len(sizes))
    params = [(jax.random.normal(k, s) / jnp.sqrt(s[0]), jnp.zeros(s[1])) for k, s in zip(keys, sizes, strict=True)]
    opt = optax.adam(1e-3, eps=1e-4)

    def loss(params, x, key):
        h = x
        for w, b in params[:2]:
            h = jnp.tanh(h @ w + b)
        mean, log_std = jnp.split(h @ params[2][0] + params[2][1], 2, axis=-1)
        eps = jax.random.normal(key, mean.shape)
        z = mean + jnp.exp(log_std) * eps
        h = z
        for w, b in params[3:5]:
            h = jnp.tanh(h @ w + b)
        logits = h @ params[5][0] + params[5][1]
        log_lik = jnp.sum(x * logits - jnp.logaddexp(0.0, logits), -1)
        log_prior = -0.5 * jnp.sum(z**2, -1)
        log_q = -0.5 * jnp.sum(eps**2, -1) - jnp.sum(log_std, -1)
        return -jnp.mean(log_lik + log_prior - log_q)

    @jax.jit
    def epoch(params, opt_state, grey, key):
        draw_key, order_key, step_key = jax.random.split(key, 3)
        x = (jax.random.uniform(draw_key, grey.shape) < grey).astype(jnp.float32)
        steps = x.shape[0] // batch_size
        order = jnp.argsort(jax.random.uniform(order_key, (x.shape[0],)))[: steps * batch_size]
        batches = x[order].reshape(steps, batch_size, -1)

        def body(carry, inputs):
            params, opt_state = carry
            value, grads = jax.value_and_grad(loss)(params, *inputs)
            updates, opt_state = opt.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), value

        (params, opt_state), values = jax.lax.scan(body, (params, opt_state),
                                                   (batches, jax.random.split(step_key, steps)))
        return params, opt_state, values.mean()

    return median_epoch_seconds(epoch, params, opt.init(params), grey, epochs)


def median_epoch_seconds(epoch, params, opt_state, data, epochs, number=jax.random.PRNGKey):
    """The median seconds of epochs calls epoch(params, opt_state, data, number(i)) -> (params, opt_state, value),
    each waited for, after one call (i = 1) that compiles it; i = 2, 3, ... (number: aevb's epoch takes the
    1-based epoch itself, a plain epoch a key made from it)."""
    params, opt_state, _ = epoch(params, opt_state, data, number(1))  # compile
    times = []
    for e in range(epochs):
        began = time.perf_counter()
        params, opt_state, value = epoch(params, opt_state, data, number(2 + e))
        jax.block_until_ready(value)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def measure(batch_sizes=(20, 100), rounds=2):
    """{batch: {"aevb", "plain", "ratio"}} in seconds per epoch of 60 000 images: the best of rounds, the
    two alternating (the first epochs of a session run slower: alternation keeps that out of the ratio)."""
    grey = jnp.asarray(splits.load(_config(20)).train_grey)
    out = {}
    for batch_size in batch_sizes:
        ours, plain = [], []
        for _ in range(rounds):
            ours.append(aevb_epoch_seconds(_config(batch_size), grey))
            plain.append(plain_epoch_seconds(batch_size, grey))
        out[str(batch_size)] = {"aevb_seconds_per_epoch": min(ours), "plain_jax_seconds_per_epoch": min(plain),
                                "ratio": min(ours) / min(plain)}
    return out


if __name__ == "__main__":
    json.dump(measure(tuple(int(b) for b in sys.argv[1:]) or (20, 100)), sys.stdout, indent=2)
    print()
