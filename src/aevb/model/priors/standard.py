"""p(z) = N(0, I): Kingma & Welling (2013)'s prior, the default. It has no parameters."""

from typing import NamedTuple

import jax

from .. import densities


class Prior(NamedTuple):
    """standard: N(0, I), nothing learned."""

    name: str = "standard"
    needs_q_density = False  # (not a field) whether log p(z) needs q's density at any z
    words = "N(0, I)"  # (not a field) the prior in words, for figures

    exact_kl: bool = True  # KL(q || p(z)) of a Gaussian q in closed form (the elbo-analytic-kl objective)

    def init(self, key, latent_dim, data_dim):
        """None: nothing to learn (the model's parameters stay those of the assignment)."""
        return None

    def extent(self, net, theta):
        """How far along an axis the density stays above e^-32 of its peak: 8 (the exact grid's box)."""
        return 8.0

    def log_density(self, net, theta, z):
        """log N(z; 0, I): (..., Dz) -> (...); net and theta are not used."""
        return densities.standard_normal_log_density(z)

    def sample(self, key, net, theta, n, latent_dim):
        """n draws z (n, Dz) of N(0, I)."""
        return jax.random.normal(key, (n, latent_dim))


PRIOR = Prior()
