"""Seconds per epoch of each posterior family on the assignment's model (784-500-2 tanh, batch 100, 10 000
MNIST images, one-sample ELBO, Adam): aevb's compiled epoch against a plain JAX scan epoch of the same
network and the same q written here in a few lines (issue 46), in the same session, alternating.

    .venv/bin/python bench/family_speed.py [FAMILY ...]     (or as a stage of make bench)
"""

import json
import sys

import jax
import jax.numpy as jnp
import optax

from aevb.config import Config
from aevb.data import splits
from protocol_speed import aevb_epoch_seconds, median_epoch_seconds  # bench/, beside this file

FAMILIES = ("gaussian", "full-gaussian", "planar:8", "coupling:4")
HIDDEN = 8  # a coupling step's units (the paper-free choice aevb makes: aevb.model.posteriors.coupling)
LOG_2PI = 1.8378770664093453


def _plain_q(outputs, eps, family):
    """z and log q(z) (without the constant) of each family, written from the formulas, nothing of aevb's."""
    mean, log_std = outputs[:, :2], outputs[:, 2:4]
    base = -0.5 * jnp.sum(eps**2, -1) - jnp.sum(log_std, -1)
    if family == "gaussian":
        return mean + jnp.exp(log_std) * eps, base
    if family == "full-gaussian":  # L = [[s1, 0], [l, s2]]
        s, low = jnp.exp(log_std), outputs[:, 4]
        return mean + jnp.stack([s[:, 0] * eps[:, 0], low * eps[:, 0] + s[:, 1] * eps[:, 1]], -1), base
    steps = int(family.split(":")[1])
    if family.startswith("coupling"):  # Dz = 2: step k keeps coordinate k % 2, moves the other
        z, log_det, at = mean + jnp.exp(log_std) * eps, 0.0, 4
        for k in range(steps):
            keep, move = k % 2, 1 - k % 2
            w1, c1 = outputs[:, at : at + HIDDEN], outputs[:, at + HIDDEN : at + 2 * HIDDEN]
            ws, cs = outputs[:, at + 2 * HIDDEN : at + 3 * HIDDEN], outputs[:, at + 3 * HIDDEN]
            wt, ct = outputs[:, at + 3 * HIDDEN + 1 : at + 4 * HIDDEN + 1], outputs[:, at + 4 * HIDDEN + 1]
            at += 4 * HIDDEN + 2
            h = jnp.tanh(w1 * z[:, keep, None] + c1)  # (B, HIDDEN)
            s = jnp.tanh(jnp.sum(ws * h, -1) + cs)
            z = z.at[:, move].set(z[:, move] * jnp.exp(s) + jnp.sum(wt * h, -1) + ct)
            log_det = log_det + s
        return z, base - log_det
    u = outputs[:, 4 : 4 + 2 * steps].reshape(-1, steps, 2)
    w = outputs[:, 4 + 2 * steps : 4 + 4 * steps].reshape(-1, steps, 2)
    b = outputs[:, 4 + 4 * steps :]
    z, log_det = mean + jnp.exp(log_std) * eps, 0.0
    for k in range(steps):
        wu = jnp.sum(w[:, k] * u[:, k], -1, keepdims=True)
        u_hat = u[:, k] + (jax.nn.softplus(wu) - 1.0 - wu) / jnp.sum(w[:, k] ** 2, -1, keepdims=True) * w[:, k]
        h = jnp.tanh(jnp.sum(w[:, k] * z, -1) + b[:, k])
        log_det = log_det + jnp.log(jnp.abs(1.0 + (1.0 - h**2) * jnp.sum(w[:, k] * u_hat, -1)))
        z = z + u_hat * h[:, None]
    return z, base - log_det


def plain_epoch_seconds(family, x, outputs, batch_size=100, epochs=3):
    sizes = [(784, 500), (500, outputs), (2, 500), (500, 784)]
    keys = jax.random.split(jax.random.PRNGKey(0), len(sizes))
    params = [(jax.random.normal(k, s) / jnp.sqrt(s[0]), jnp.zeros(s[1])) for k, s in zip(keys, sizes, strict=True)]
    opt = optax.adam(1e-3)

    def loss(params, x, key):
        out = jnp.tanh(x @ params[0][0] + params[0][1]) @ params[1][0] + params[1][1]
        eps = jax.random.normal(key, (x.shape[0], 2))
        z, log_q = _plain_q(out, eps, family)
        logits = jnp.tanh(z @ params[2][0] + params[2][1]) @ params[3][0] + params[3][1]
        log_lik = jnp.sum(x * logits - jnp.logaddexp(0.0, logits), -1)
        return -jnp.mean(log_lik - 0.5 * jnp.sum(z**2, -1) - log_q)

    @jax.jit
    def epoch(params, opt_state, x, key):
        order_key, step_key = jax.random.split(key)
        steps = x.shape[0] // batch_size
        batches = x[jax.random.permutation(order_key, x.shape[0])[: steps * batch_size]].reshape(steps, batch_size, -1)

        def body(carry, inputs):
            params, opt_state = carry
            value, grads = jax.value_and_grad(loss)(params, *inputs)
            updates, opt_state = opt.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), value

        (params, opt_state), values = jax.lax.scan(body, (params, opt_state), (batches, jax.random.split(step_key, steps)))
        return params, opt_state, values.mean()

    return median_epoch_seconds(epoch, params, opt.init(params), x, epochs)


def measure(families=FAMILIES, rounds=3):
    """{family: {"aevb", "plain", "ratio"}} in seconds per epoch of 10 000 images: the best of rounds, alternating."""
    x = jnp.asarray(splits.load(Config()).x_train)
    out = {}
    for family in families:
        config = Config(posterior=family)
        ours, plain = [], []
        for _ in range(rounds):
            ours.append(aevb_epoch_seconds(config, x))
            plain.append(plain_epoch_seconds(family, x, config.network.family.outputs(2)))
        out[family] = {"aevb_seconds_per_epoch": min(ours), "plain_jax_seconds_per_epoch": min(plain),
                       "ratio": min(ours) / min(plain)}
    return out


if __name__ == "__main__":
    json.dump(measure(tuple(sys.argv[1:]) or FAMILIES), sys.stdout, indent=2)
    print()
