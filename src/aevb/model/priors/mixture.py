"""p(z) = sum_c w_c N(z; m_c, diag(exp(s_c)^2)): a learned mixture of K factorized Gaussians (the weights
w = softmax(logits)), the prior's parameters under theta["prior"]: logits (K,), mean (K, Dz), log_std (K, Dz)."""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from .. import densities


class Prior(NamedTuple):
    """mixture:K, K learned components."""

    components: int = 10
    needs_q_density = False  # (not a field) whether log p(z) needs q's density at any z

    exact_kl: bool = False

    @property
    def words(self):
        """The prior in words, for figures."""
        return f"the learned prior ({self.name})"

    @property
    def name(self):
        """The prior's setting, such as mixture:10."""
        return f"mixture:{self.components}"

    def init(self, key, latent_dim, data_dim):
        """Equal weights, unit spreads, and means drawn from N(0, I), so that the components start apart and
        their mixture near the standard prior (data_dim is not used)."""
        return {"logits": jnp.zeros((self.components,)),
                "mean": jax.random.normal(key, (self.components, latent_dim)),
                "log_std": jnp.zeros((self.components, latent_dim))}

    def view(self, net, params):
        """What theta["prior"] holds in the generative view: the mixture's own parameters, params["prior"]."""
        return params["prior"]

    def extent(self, net, theta):
        """How far from 0 along an axis each component stays above e^-32 of its own peak: its mean plus 8 of its
        standard deviations, the largest over components (the exact grid covers it)."""
        prior = theta["prior"]
        return jnp.max(jnp.abs(prior["mean"]) + 8.0 * jnp.exp(prior["log_std"]))

    def log_density(self, net, theta, z):
        """log p(z): z (..., Dz) -> (...) (net is not used)."""
        prior = theta["prior"]
        return densities.mixture_log_density(jax.nn.log_softmax(prior["logits"]), prior["mean"], prior["log_std"], z)

    def sample(self, key, net, theta, n, latent_dim):
        """n draws z (n, Dz) of the mixture."""
        prior = theta["prior"]
        return densities.sample_mixture(key, jax.nn.log_softmax(prior["logits"]), prior["mean"], prior["log_std"],
                                        (n,))
