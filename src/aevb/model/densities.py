"""Hand-written log densities and samplers.

The project's defining rule: no probabilistic modelling elements from any framework. Every
density here is written out from its formula, and every sampler transforms uniform or
standard-normal draws, the only things we take from ``jax.random``.

Conventions: the batch axis (or axes) come first and the event axis is last. Densities that
describe a vector sum over the event axis and keep every leading axis, so the same function
serves a batch ``(B, D) -> (B,)`` and samples of a batch ``(K, B, D) -> (K, B)``.
Units: nats.
"""

import jax
import jax.numpy as jnp
import numpy as np

LOG_2PI = float(np.float32(np.log(2.0 * np.pi)))  # numpy: importing aevb starts no JAX backend


def factorized_gaussian_log_density(mean, log_std, z):
    """log N(z; mean, diag(exp(log_std)^2)), summed over the last axis: (..., D) -> (...)."""
    # Standardize first so a tiny std does not square into an underflow before dividing.
    standardized = (z - mean) * jnp.exp(-log_std)
    return jnp.sum(-0.5 * LOG_2PI - log_std - 0.5 * standardized**2, axis=-1)


def standard_normal_log_density(z):
    """log N(z; 0, I), summed over the last axis: (..., D) -> (...)."""
    return jnp.sum(-0.5 * LOG_2PI - 0.5 * z**2, axis=-1)


def bernoulli_log_density(logits, x):
    """Elementwise log Bernoulli(x; sigmoid(logits)) for x in {0, 1}: (..., D) -> (..., D).

    log p(x) = -log(1 + exp(-s * logits)) with s = 2x - 1, i.e. -softplus(-s * logits).
    logaddexp(0, a) never forms exp of a large number, so it is exact for ``|logits|`` of 1e4,
    1e9 and beyond, and it keeps full precision for the tiny losses of confident correct
    pixels (the form x*logits - softplus(logits) loses them to cancellation).
    """
    sign = 2.0 * x - 1.0
    return -jnp.logaddexp(0.0, -sign * logits)


def gaussian_kl_to_standard_normal(mean, log_std):
    """KL(N(mean, diag(std^2)) || N(0, I)) in closed form, summed over the last axis.

    Kingma & Welling (2013), Appendix B: -KL = 1/2 sum(1 + log std^2 - mean^2 - std^2).
    mean, log_std: (..., D) each; returns (...).
    """
    return 0.5 * jnp.sum(mean**2 + jnp.exp(2.0 * log_std) - 1.0 - 2.0 * log_std, axis=-1)


def sample_diag_gaussian(key, mean, log_std, sample_shape=()):
    """Reparameterized draws z = mean + exp(log_std) * eps, eps ~ N(0, I): shape
    sample_shape + mean.shape, e.g. sample_shape (K,) and mean (B, Dz) give (K, B, Dz).

    Written as a deterministic function of (mean, log_std) and standard-normal noise, so
    gradients flow to both parameters (Kingma & Welling 2013, Section 2.4).
    """
    shape = tuple(sample_shape) + jnp.shape(mean)
    eps = jax.random.normal(key, shape, dtype=jnp.result_type(mean))
    return jnp.broadcast_to(mean, shape) + jnp.exp(jnp.broadcast_to(log_std, shape)) * eps


def sample_gaussian_mixture(key, weights, components, sample_shape=()):
    """Draws z from the mixture sum_c w_c N(mean_c, diag(exp(log_std_c)^2)) and returns (z, log of the
    mixture's density at z). weights: C floats summing to 1; components: C pairs (mean, log_std),
    each broadcast to the event shape (..., D); z has shape sample_shape + that shape.

    Each draw's component is chosen by a uniform draw against the cumulative weights, then
    reparameterized; the density is log sum_c exp(log w_c + log N_c(z)).
    """
    shape = tuple(sample_shape) + jnp.broadcast_shapes(*(jnp.shape(p) for c in components for p in c))
    choose_key, noise_key = jax.random.split(key)
    u = jax.random.uniform(choose_key, shape[:-1])
    eps = jax.random.normal(noise_key, shape)
    z, bound = jnp.zeros(shape), 0.0
    for weight, (mean, log_std) in zip(weights, components, strict=True):
        chosen = jnp.broadcast_to(((u >= bound) & (u < bound + weight))[..., None], shape)
        z = jnp.where(chosen, jnp.broadcast_to(mean, shape) + jnp.exp(jnp.broadcast_to(log_std, shape)) * eps, z)
        bound += weight
    z = jnp.where(jnp.broadcast_to((u >= bound)[..., None], shape), jnp.broadcast_to(components[-1][0], shape)
                  + jnp.exp(jnp.broadcast_to(components[-1][1], shape)) * eps, z)  # rounding: the last one
    return z, gaussian_mixture_log_density(weights, components, z)


def gaussian_mixture_log_density(weights, components, z):
    """log sum_c w_c N(z; mean_c, diag(exp(log_std_c)^2)): z (..., D) -> (...), the components (see
    sample_gaussian_mixture) broadcast against z.
    weights: the components' weights (C,), summing to 1; components: (means, log_stds), C of each."""
    log_terms = [jnp.log(weight) + factorized_gaussian_log_density(jnp.broadcast_to(mean, z.shape),
                                                                   jnp.broadcast_to(log_std, z.shape), z)
                 for weight, (mean, log_std) in zip(weights, components, strict=True)]
    return jax.nn.logsumexp(jnp.stack(log_terms), axis=0)


def mixture_log_density(log_weights, means, log_stds, z):
    """log sum_c w_c N(z; mean_c, diag(exp(log_std_c)^2)) of a mixture given as arrays: log_weights (C,)
    (log w, summing to 1 in w), means and log_stds (C, D); z (..., D) -> (...). Each component's term in
    float32 from its own differences (no expansion of the square, which loses digits far from the mean)."""
    z = jnp.broadcast_to(z[..., None, :], z.shape[:-1] + means.shape)  # (..., C, D)
    per_component = factorized_gaussian_log_density(jnp.broadcast_to(means, z.shape),
                                                    jnp.broadcast_to(log_stds, z.shape), z)  # (..., C)
    return jax.nn.logsumexp(per_component + jnp.broadcast_to(log_weights, per_component.shape), axis=-1)


def sample_mixture(key, log_weights, means, log_stds, sample_shape):
    """Draws z (sample_shape + (D,)) from the mixture of log_weights (C,), means and log_stds (C, D) (as in
    mixture_log_density): each draw's component is the first whose cumulative weight exceeds a uniform draw
    (inverse CDF, no categorical sampler), then z is reparameterized from standard-normal noise."""
    choose_key, noise_key = jax.random.split(key)
    cumulative = jnp.cumsum(jnp.exp(log_weights))  # (C,)
    u = jax.random.uniform(choose_key, tuple(sample_shape)) * cumulative[-1]  # the total: 1 up to rounding
    chosen = jnp.minimum(jnp.searchsorted(cumulative, u, side="right"), means.shape[0] - 1)  # sample_shape
    eps = jax.random.normal(noise_key, tuple(sample_shape) + means.shape[-1:])
    return means[chosen] + jnp.exp(log_stds[chosen]) * eps


def sample_bernoulli(key, probs):
    """Binary draws x ~ Bernoulli(probs), elementwise, as float 0/1: u < p with u ~ U[0, 1)."""
    u = jax.random.uniform(key, jnp.shape(probs), dtype=jnp.result_type(probs, jnp.float32))
    return (u < probs).astype(u.dtype)


def uniform_permutation(key, n):
    """A uniformly random permutation of range(n): the order of n uniform 32-bit integers.

    (Ties, probability about n^2 / 2^33, are broken by index by the stable sort.)
    """
    return jnp.argsort(jax.random.bits(key, (n,), dtype=jnp.uint32), stable=True)


def standard_normal_cdf(z):
    """Phi(z) = erfc(-z / sqrt 2) / 2, elementwise (erfc keeps the lower tail's precision)."""
    return 0.5 * jax.scipy.special.erfc(-jnp.asarray(z, jnp.float32) / jnp.sqrt(2.0))


def standard_normal_quantile(p, iterations=60):
    """Phi^-1(p) for p in (0, 1), elementwise, by bisection on Phi over [-10, 10].
    iterations: bisection steps (60 halve the interval to float64's resolution)."""
    p = jnp.asarray(p, jnp.float32)
    low, high = jnp.full(p.shape, -10.0), jnp.full(p.shape, 10.0)
    for _ in range(iterations):
        mid = 0.5 * (low + high)
        below = standard_normal_cdf(mid) < p
        low, high = jnp.where(below, mid, low), jnp.where(below, high, mid)
    return np.asarray(0.5 * (low + high))
