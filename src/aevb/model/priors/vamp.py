"""The VampPrior (Tomczak & Welling 2018): p(z) = (1/K) sum_k q(z | u_k), the mean of the encoder's own
posteriors at K learned pseudo-inputs u_k (K, D). As in the authors' code (models/Model.py, add_pseudoinputs;
utils/load_data.py sets the start), each u_k is hardtanh(0, 1) of free parameters started near 0.05
(N(0.05, 0.01^2)): grey levels in [0, 1] as images are, the gradient zero where a pixel is held at 0 or 1. The free
parameters live under params["prior"]["pseudo_inputs"]; pseudo_inputs(params) gives the u_k. The encoder is the
model's (its parameters shared: the generative view holds its q at the pseudo-inputs), so the prior moves with the
encoder. It needs q's density at any z: a posterior family with one (gaussian, full-gaussian)."""

from typing import NamedTuple

import jax
import jax.numpy as jnp


START_MEAN, START_STD = 0.05, 0.01  # the free parameters' start (the authors' utils/load_data.py)


def pseudo_inputs(params):
    """The pseudo-inputs u_k (K, D): hardtanh(0, 1) of their free parameters, params["prior"]["pseudo_inputs"]."""
    return jnp.clip(params["prior"]["pseudo_inputs"], 0.0, 1.0)


class Prior(NamedTuple):
    """vamp:K, K pseudo-inputs."""

    components: int = 500
    needs_q_density = True  # (not a field) log q(z|x) at any z, which the VampPrior is made of

    exact_kl: bool = False

    @property
    def words(self):
        """The prior in words, for figures."""
        return f"the learned prior ({self.name})"

    @property
    def name(self):
        """The prior's setting, such as vamp:500."""
        return f"vamp:{self.components}"

    def init(self, key, latent_dim, data_dim):
        """The K pseudo-inputs' free parameters (K, data_dim), N(0.05, 0.01^2) as the authors' start (latent_dim is
        not used)."""
        return {"pseudo_inputs": START_MEAN + START_STD * jax.random.normal(key, (self.components, data_dim))}

    def view(self, net, params):
        """What theta["prior"] holds in the generative view: {"q": the encoder's q at the pseudo-inputs}, encoded
        once per view (not at every density call: the exact grid calls it per tile), a function of the encoder's
        parameters and the pseudo-inputs, so the gradient of log p(z) reaches both."""
        return {"q": net.encode(params["encoder"], pseudo_inputs(params))}

    def posteriors(self, net, theta):
        """The encoder's q at the pseudo-inputs, each parameter (K, ...)."""
        return theta["prior"]["q"]

    def extent(self, net, theta):
        """How far from 0 along an axis each pseudo-input's q stays above e^-32 of its own peak: its location plus
        8 of its spreads, the largest over pseudo-inputs (the exact grid covers it)."""
        q = self.posteriors(net, theta)
        return jnp.max(jnp.abs(q.location) + 8.0 * q.scale)

    def log_density(self, net, theta, z):
        """log p(z) = log-sum-exp_k log q(z | u_k) - log K: z (..., Dz) -> (...)."""
        q = self.posteriors(net, theta)  # (K, Dz) each
        z = jnp.broadcast_to(z[..., None, :], z.shape[:-1] + (self.components, z.shape[-1]))  # (..., K, Dz)
        per_component = q.log_density(z)  # (..., K): z against every pseudo-input's q
        return jax.nn.logsumexp(per_component, axis=-1) - jnp.log(self.components)

    def sample(self, key, net, theta, n, latent_dim):
        """n draws z (n, Dz): a pseudo-input chosen uniformly (floor(K u), u uniform), then z ~ its q."""
        choose_key, draw_key = jax.random.split(key)
        chosen = jnp.minimum(jnp.floor(jax.random.uniform(choose_key, (n,)) * self.components).astype(jnp.int32),
                             self.components - 1)  # (n,)
        q = jax.tree_util.tree_map(lambda p: p[chosen], self.posteriors(net, theta))  # (n, ...) each
        return q.sample(draw_key)[0]
