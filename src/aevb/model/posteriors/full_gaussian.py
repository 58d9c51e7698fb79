"""A full-covariance Gaussian q(z|x) = N(mean, L L^T), L lower triangular with diagonal exp(log_std):
the encoder gives mean, log_std and the Dz (Dz - 1) / 2 entries below L's diagonal."""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from .. import densities


def _below_diagonal(latent_dim):
    return jnp.tril_indices(latent_dim, -1)


class FullGaussian(NamedTuple):
    """mean, log_std (..., Dz); lower (..., Dz, Dz), L's entries below the diagonal (zero elsewhere)."""

    has_density = True  # log q at any z (not a field: the pytree holds arrays only)

    mean: jnp.ndarray
    log_std: jnp.ndarray
    lower: jnp.ndarray

    def cholesky(self):
        """L (..., Dz, Dz): lower plus diag(exp(log_std))."""
        return self.lower + jnp.exp(self.log_std)[..., None] * jnp.broadcast_to(jnp.eye(self.mean.shape[-1]),
                                                                             self.lower.shape)

    def sample(self, key, lead=()):
        """(z = mean + L eps, log q(z)): z (lead..., ..., Dz), log q (lead..., ...), from eps directly."""
        eps = jax.random.normal(key, tuple(lead) + self.mean.shape, dtype=self.mean.dtype)
        chol = jnp.broadcast_to(self.cholesky(), eps.shape + eps.shape[-1:])
        z = jnp.broadcast_to(self.mean, eps.shape) + jnp.einsum("...ij,...j->...i", chol, eps)
        log_q = densities.standard_normal_log_density(eps) - jnp.sum(jnp.broadcast_to(self.log_std, eps.shape), -1)
        return z, log_q

    def log_density(self, z):
        """log q(z) at any z (..., Dz): eps = L^-1 (z - mean) by a triangular solve."""
        chol = jnp.broadcast_to(self.cholesky(), z.shape + z.shape[-1:])
        eps = jax.scipy.linalg.solve_triangular(chol, (z - jnp.broadcast_to(self.mean, z.shape))[..., None],
                                                lower=True)[..., 0]
        return densities.standard_normal_log_density(eps) - jnp.sum(jnp.broadcast_to(self.log_std, z.shape), -1)

    def kl_to_prior(self):
        """KL(N(mean, L L^T) || N(0, I)) = (tr(L L^T) + mean^T mean - Dz) / 2 - sum(log_std): (...)."""
        trace = jnp.sum(self.cholesky() ** 2, axis=(-2, -1))
        return 0.5 * (trace + jnp.sum(self.mean**2, -1) - self.mean.shape[-1]) - jnp.sum(self.log_std, -1)

    @property
    def location(self):
        """The point the figures draw for an image: q's mean (..., Dz)."""
        return self.mean

    @property
    def scale(self):
        """The marginal standard deviations (..., Dz): the norms of L's rows."""
        return jnp.sqrt(jnp.sum(self.cholesky() ** 2, axis=-1))

    def factorized(self, key):
        """(mean, log_std) of a factorized Gaussian near q, where SVI's q* starts: q's mean and the logs of its
        marginal standard deviations (key unused)."""
        return self.mean, jnp.log(self.scale)


class Family(NamedTuple):
    """full-gaussian: 2 Dz + Dz (Dz - 1) / 2 encoder outputs: mean, log_std, L below its diagonal (row by row)."""

    q_type = FullGaussian  # the class of its q (not a field): what it can do, such as has_density, read before any q

    name: str = "full-gaussian"
    exact_kl: bool = True

    def outputs(self, latent_dim):
        """How many numbers the encoder gives for q at this Dz."""
        return 2 * latent_dim + latent_dim * (latent_dim - 1) // 2

    def embed(self, mean, log_std):
        """The outputs whose q is the factorized Gaussian (mean, log_std): L's entries below the diagonal 0."""
        dz = mean.shape[-1]
        return jnp.concatenate([mean, log_std, jnp.zeros(mean.shape[:-1] + (dz * (dz - 1) // 2,), mean.dtype)], -1)

    def q(self, outputs):
        """q from the encoder's outputs (..., outputs(Dz))."""
        dz = _latent_dim(outputs.shape[-1])
        rows, cols = _below_diagonal(dz)
        lower = jnp.zeros(outputs.shape[:-1] + (dz, dz), outputs.dtype).at[..., rows, cols].set(outputs[..., 2 * dz:])
        return FullGaussian(outputs[..., :dz], outputs[..., dz : 2 * dz], lower)


def _latent_dim(count):
    """Dz from the number of outputs 2 Dz + Dz (Dz - 1) / 2."""
    dz = 1
    while 2 * dz + dz * (dz - 1) // 2 < count:
        dz += 1
    return dz


FAMILY = Family()
