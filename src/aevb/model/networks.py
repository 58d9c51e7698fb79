"""A table of encoder/decoder networks, chosen by Config.architecture.

A network is three pure functions: ``init(key, data_dim, config) -> {"encoder": phi,
"decoder": theta}``, ``encode(phi, x (..., D)) -> (mean, log_std)``, each (..., Dz), the
parameters of the factorized Gaussian q(z|x), and ``decode(theta, z (..., Dz)) -> logits``
(..., D) of the Bernoulli p(x|z). Logits, never probabilities: aevb.model.probability owns the probability.
Adding a network is one entry in NETWORKS (and its functions).
"""

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp


class Network(NamedTuple):
    init: Callable
    encode: Callable
    decode: Callable


def dense_init(key, n_in, n_out):
    # Weights ~ N(0, 1/n_in) (LeCun normal) keep tanh units out of saturation at the start.
    return {"weight": jax.random.normal(key, (n_in, n_out)) / jnp.sqrt(n_in), "bias": jnp.zeros((n_out,))}


def dense(layer, inputs):
    """inputs (..., n_in) -> (..., n_out); the bias is broadcast over the leading axes explicitly."""
    outputs = inputs @ layer["weight"]
    return outputs + jnp.broadcast_to(layer["bias"], outputs.shape)


# ---- mlp: one hidden tanh layer each way (Kingma & Welling 2013, Appendix C.2) ---------------


def mlp_init(key, data_dim, config):
    k1, k2, k3, k4 = jax.random.split(key, 4)
    phi = {
        "hidden": dense_init(k1, data_dim, config.hidden_dim),
        # One output layer gives both halves of q's parameters: mean then log_std.
        "out": dense_init(k2, config.hidden_dim, 2 * config.latent_dim),
    }
    theta = {"hidden": dense_init(k3, config.latent_dim, config.hidden_dim),
             "out": dense_init(k4, config.hidden_dim, data_dim)}
    return {"encoder": phi, "decoder": theta}


def mlp_encode(phi, x):
    out = dense(phi["out"], jnp.tanh(dense(phi["hidden"], x)))  # (..., 2 Dz)
    mean, log_std = jnp.split(out, 2, axis=-1)
    return mean, log_std


def mlp_decode(theta, z):
    return dense(theta["out"], jnp.tanh(dense(theta["hidden"], z)))  # (..., D)


NETWORKS = {
    "mlp": Network(init=mlp_init, encode=mlp_encode, decode=mlp_decode),
}


def get(name):
    if name not in NETWORKS:
        raise ValueError(f"unknown architecture {name!r}; choose from {', '.join(NETWORKS)}")
    return NETWORKS[name]
