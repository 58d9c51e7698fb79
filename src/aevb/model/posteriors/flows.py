"""What a flow's q does whatever its steps (planar, coupling): q0 = N(mean, diag(exp(log_std)^2)) pushed through
the q's own flow(z0) -> (z_K, log-determinant). A flow's class takes these as its methods (sample = flows.sample,
location = property(flows.location), scale = property(flows.scale), factorized = flows.factorized): a
NamedTuple cannot inherit them."""

import jax
import jax.numpy as jnp

from .. import densities


def sample(q, key, lead=()):
    """(z_K, log q(z_K)): z (lead..., ..., Dz), log q (lead..., ...): log q0 at z0 less the flow's log-determinant."""
    eps = jax.random.normal(key, tuple(lead) + q.mean.shape, dtype=q.mean.dtype)
    log_std = jnp.broadcast_to(q.log_std, eps.shape)
    z, log_det = q.flow(jnp.broadcast_to(q.mean, eps.shape) + jnp.exp(log_std) * eps)
    return z, densities.standard_normal_log_density(eps) - jnp.sum(log_std, -1) - log_det


def location(q):
    """The point the figures draw for an image: q0's mean pushed through the flow (..., Dz); q: a flow's q."""
    return q.flow(q.mean)[0]


def scale(q):
    """q0's standard deviations (..., Dz) of a flow's q."""
    return jnp.exp(q.log_std)


DRAWS = 256  # draws of q whose moments start SVI's factorized q*


def factorized(q, key):
    """(mean, log_std) of a factorized Gaussian near q, where SVI's q* starts: the moments of DRAWS draws of q (a
    flow's q0 mean can lie far from where its draws are, and q0's spreads are not theirs: at z = 50 a coupling flow's
    q* fitted from q0 stayed 45 and 145 nats below log p(x))."""
    z, _ = q.sample(key, (DRAWS,))  # (DRAWS, ..., Dz)
    return jnp.mean(z, axis=0), jnp.log(jnp.std(z, axis=0))
