"""The factorized Gaussian q(z|x) = N(mean, diag(exp(log_std)^2)) of Kingma & Welling (2013): the default
family, the encoder's 2 Dz outputs split into mean then log_std."""

from typing import NamedTuple

import jax.numpy as jnp

from .. import densities


class Gaussian(NamedTuple):
    """q = (mean, log_std), each (..., Dz): unpacks as the pair it always was."""

    has_density = True  # log q at any z (not a field: the pytree holds arrays only)

    mean: jnp.ndarray
    log_std: jnp.ndarray

    def sample(self, key, lead=()):
        """(z, log q(z)): z (lead..., ..., Dz) reparameterized, its log density (lead..., ...)."""
        z = densities.sample_diag_gaussian(key, self.mean, self.log_std, lead)
        return z, self.log_density(z)

    def log_density(self, z):
        """log q(z) at any z (..., Dz), broadcast against q's leading axes -> (...)."""
        mean, log_std = (jnp.broadcast_to(p, z.shape) for p in self)
        return densities.factorized_gaussian_log_density(mean, log_std, z)

    def kl_to_prior(self):
        """KL(q || N(0, I)) in closed form (Kingma & Welling 2013, Appendix B): (...)."""
        return densities.gaussian_kl_to_standard_normal(self.mean, self.log_std)

    @property
    def location(self):
        """The point the figures draw for an image: q's mean (..., Dz)."""
        return self.mean

    @property
    def scale(self):
        """A typical spread per coordinate (..., Dz): AIS's first step size."""
        return jnp.exp(self.log_std)

    def factorized(self, key):
        """(mean, log_std) of a factorized Gaussian near q, where SVI's q* starts: q itself (key unused)."""
        return self.mean, self.log_std


class Family(NamedTuple):
    """gaussian: 2 Dz encoder outputs, mean then log_std."""

    q_type = Gaussian  # the class of its q (not a field): what it can do, such as has_density, read before any q

    name: str = "gaussian"
    exact_kl: bool = True  # a closed-form KL to the prior (the elbo-analytic-kl objective)

    def outputs(self, latent_dim):
        """How many numbers the encoder gives for q at this Dz."""
        return 2 * latent_dim

    def embed(self, mean, log_std):
        """The outputs (..., 2 Dz) whose q is the factorized Gaussian (mean, log_std)."""
        return jnp.concatenate([mean, log_std], axis=-1)

    def q(self, outputs):
        """q from the encoder's outputs (..., 2 Dz)."""
        return Gaussian(*jnp.split(outputs, 2, axis=-1))


FAMILY = Family()
