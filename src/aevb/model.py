"""The VAE of Kingma & Welling (2013), written out: prior, decoder, likelihood, encoder, ELBO.

Parameters are plain pytrees (nested dicts of arrays) passed explicitly into pure functions.
theta: the decoder (generative model) p(z) p(x|z); phi: the encoder (recognition model) q(z|x).
Units: nats per image (summed over the 784 pixels, averaged over images).
"""

import jax
import jax.numpy as jnp

from . import densities

IMAGE_PIXELS = 784  # 28 x 28


def _dense_init(key, n_in, n_out):
    # Weights ~ N(0, 1/n_in) (LeCun normal) keep tanh units out of saturation at the start.
    return {"weight": jax.random.normal(key, (n_in, n_out)) / jnp.sqrt(n_in), "bias": jnp.zeros((n_out,))}


def init_params(key, latent_dim=2, hidden_dim=500):
    """Returns {"encoder": phi, "decoder": theta}, the encoder's and the decoder's parameters."""
    k1, k2, k3, k4 = jax.random.split(key, 4)
    phi = {
        "hidden": _dense_init(k1, IMAGE_PIXELS, hidden_dim),
        # One output layer gives both halves of q's parameters: mean then log_std.
        "out": _dense_init(k2, hidden_dim, 2 * latent_dim),
    }
    theta = {"hidden": _dense_init(k3, latent_dim, hidden_dim), "out": _dense_init(k4, hidden_dim, IMAGE_PIXELS)}
    return {"encoder": phi, "decoder": theta}


def _dense(layer, inputs):
    """inputs (..., n_in) -> (..., n_out); the bias is broadcast over the leading axes explicitly."""
    outputs = inputs @ layer["weight"]
    return outputs + jnp.broadcast_to(layer["bias"], outputs.shape)


def _mlp(params, inputs):
    return _dense(params["out"], jnp.tanh(_dense(params["hidden"], inputs)))


def log_prior(z):
    """log p(z) = log N(z; 0, I): (..., Dz) -> (...)."""
    return densities.standard_normal_log_density(z)


def decoder(theta, z):
    """Bernoulli logits of p(x|z): (..., Dz) -> (..., 784). Logits, never probabilities."""
    return _mlp(theta, z)


def log_likelihood(theta, x, z):
    """log p(x|z), summed over pixels: x (..., 784), z (..., Dz) -> (...).

    x is broadcast against z's leading axes, so one image (784,) scores K zs (K, Dz) -> (K,),
    and a batch (B, 784) scores samples (K, B, Dz) -> (K, B).
    """
    logits = decoder(theta, z)
    return jnp.sum(densities.bernoulli_log_density(logits, jnp.broadcast_to(x, logits.shape)), axis=-1)


def joint_log_density(theta, x, z):
    """log p(x, z) = log p(z) + log p(x|z): (...)."""
    return log_prior(z) + log_likelihood(theta, x, z)


def encoder(phi, x):
    """Parameters (mean, log_std) of q(z|x): x (..., 784) -> two (..., Dz)."""
    out = _mlp(phi, x)
    mean, log_std = jnp.split(out, 2, axis=-1)
    return mean, log_std


def log_q(q_params, z):
    """log q(z|x) for q_params = (mean, log_std): z (..., Dz) -> (...).

    mean and log_std are broadcast against z's leading axes: (B, Dz) params score (K, B, Dz) zs.
    """
    mean, log_std = (jnp.broadcast_to(p, z.shape) for p in q_params)
    return densities.factorized_gaussian_log_density(mean, log_std, z)


def elbo_per_image(key, phi, theta, x, num_samples=1, kl="mc"):
    """An unbiased estimate of each image's ELBO, averaged over num_samples z: (B, 784) -> (B,).

    kl="mc" (the default, the assignment's estimator): log p(x, z) - log q(z|x) at z ~ q.
    kl="analytic": log p(x|z) at z ~ q minus the closed-form KL(q || p(z))
    (Kingma & Welling 2013, eq. 10 and Appendix B), which has lower variance.
    """
    mean, log_std = encoder(phi, x)  # (B, Dz) each
    z = densities.sample_diag_gaussian(key, mean, log_std, (num_samples,))  # (S, B, Dz)
    if kl == "mc":
        estimate = joint_log_density(theta, x, z) - log_q((mean, log_std), z)  # (S, B)
        return jnp.mean(estimate, axis=0)
    if kl == "analytic":
        expected_ll = jnp.mean(log_likelihood(theta, x, z), axis=0)  # (B,)
        return expected_ll - densities.gaussian_kl_to_standard_normal(mean, log_std)
    raise ValueError(f"kl must be 'mc' or 'analytic', not {kl!r}")


def elbo(key, phi, theta, x, num_samples=1, kl="mc"):
    """Unbiased estimate of the mean ELBO over the batch, nats per image: a scalar."""
    return jnp.mean(elbo_per_image(key, phi, theta, x, num_samples, kl))


def loss(params, x, key, num_samples=1, kl="mc"):
    """The training objective, -ELBO; params = {"encoder": phi, "decoder": theta}."""
    return -elbo(key, params["encoder"], params["decoder"], x, num_samples, kl)
