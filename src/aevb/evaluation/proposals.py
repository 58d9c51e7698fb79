"""The defensive proposal around an image's q (defensive importance sampling, Hesterberg 1995), for the IWAE bound and
AIS's start: r = 1/2 q + 1/4 N(m, diag((3 s)^2)) + 1/4 N(0, I), (m, log s) = q.factorized(key), a factorized Gaussian
near q (for a flow, the moments of its draws). Where q sits away from the posterior's mass or is too narrow, the wide
and the prior components still find it, and the weights p/r stay below 4 p(x|z).

log r(z) needs q's density at the other components' draws too: where the family has none at points q did not draw
(a planar flow), N(m, s^2) stands in for q in the first component, and describe_defensive says so."""

import jax
import jax.numpy as jnp

from ..model import densities, posteriors

WEIGHTS = (0.5, 0.25, 0.25)  # q, q widened, the prior
WIDENING = 3.0  # the wide component has the standard deviations of q's factorized Gaussian times this


def defensive(q, key):
    """(sample, log_density) of the defensive proposal around q (an image's q for each row, (B, ...)):
    sample(key, sample_shape) -> (z (sample_shape..., B, Dz), log r(z) (sample_shape..., B)); log_density(z) -> (...).
    key: q.factorized's draws (a flow's moments; a factorized Gaussian's are itself, key unused).
    Where q is a factorized Gaussian, or has no density at any z, r is a mixture of three Gaussians drawn as
    densities.sample_gaussian_mixture draws it (the default family's draws and numbers as they always were)."""
    q = posteriors.as_q(q)
    mean, log_std = q.factorized(key)  # (B, Dz) each
    others = [(mean, log_std + jnp.log(WIDENING)), (jnp.zeros_like(mean), jnp.zeros_like(mean))]
    if isinstance(q, posteriors.Gaussian) or not q.has_density:
        components = [(mean, log_std), *others]
        return (lambda k, shape: densities.sample_gaussian_mixture(k, WEIGHTS, components, shape),
                lambda z: densities.gaussian_mixture_log_density(WEIGHTS, components, z))
    rest = WEIGHTS[1] + WEIGHTS[2]  # the two Gaussians' share, each's weight within it below
    within = (WEIGHTS[1] / rest, WEIGHTS[2] / rest)

    def log_density(z):  # log (1/2 q(z) + 1/2 (1/2 wide + 1/2 prior)(z)): (...)
        return jnp.logaddexp(jnp.log(WEIGHTS[0]) + q.log_density(z),
                             jnp.log(rest) + densities.gaussian_mixture_log_density(within, others, z))

    def sample(k, shape):
        choose_key, q_key, others_key = jax.random.split(k, 3)
        from_q, _ = q.sample(q_key, tuple(shape))  # (shape..., B, Dz)
        from_others, _ = densities.sample_gaussian_mixture(others_key, within, others, shape)
        chosen = jax.random.uniform(choose_key, from_q.shape[:-1]) < WEIGHTS[0]  # (shape..., B): q's draws
        z = jnp.where(chosen[..., None], from_q, from_others)
        return z, log_density(z)

    return sample, log_density


def describe_defensive(family):
    """The defensive proposal of a posterior family in words (summary.json's defensive_proposal): its first
    component q itself, or the Gaussian standing in for it where the family has no density at any z."""
    if family.q_type.has_density:
        return "½ q + ¼ wide q + ¼ N(0, I)"
    return (f"½ N(m, s²) + ¼ N(m, (3s)²) + ¼ N(0, I), m and s the moments of q's draws: a Gaussian stands in for "
            f"q ({family.name} has no density off its own draws)")
