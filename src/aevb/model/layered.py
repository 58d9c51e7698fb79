"""Two stochastic layers (Burda, Grosse & Salakhutdinov 2016, Section 5; in the authors' experiments.py z1 of 100 and
z2 of 50 units, q(z1|x) and p(x|z1) through two layers of 200 units, q(z2|z1) and p(z1|z2) through two of 100):
p(z2) p(z1|z2) p(x|z1), with q(z1|x) q(z2|z1).

z = (z1, z2), Config.latent_dim units in all, the last top_dim of them z2 (Config.top, such as "50:100,100"): the
evaluation sees one z, log p(x, z) and q's draws with their density, as for one layer, and needs no branch.
p(z) = N(z2; 0, I) N(z1; m(z2), diag(exp(s(z2))^2)) is the prior (Prior: its network under params["prior"]); p(x|z)
reads z1 alone (the decoder's network of z1); q = q(z1|x) q(z2|z1) (Layered): a factorized Gaussian of z1 from the
encoder, then z2 from a network of the z1 drawn, whose weights q carries for each image (broadcast: every leaf of q
has the batch axis first, as every q's). The networks between z1 and z2 have tanh units, as Burda et al.'s.
"""

import functools
import re
from typing import NamedTuple

import jax
import jax.numpy as jnp

from . import densities
from .layers import stack_apply, stack_init


def parse(spec, latent_dim):
    """(top_dim, widths) of a setting spec such as "50:100,100" (z2's units, then the hidden widths of the networks
    between z1 and z2), or None for "" (one stochastic layer); latent_dim counts z1 and z2. Raises ValueError in one
    line for anything else."""
    if not spec:
        return None
    found = re.fullmatch(r"\s*([0-9]{1,7})\s*:\s*([0-9]{1,7}(?:\s*,\s*[0-9]{1,7}){0,7})\s*", spec)
    if not found:
        raise ValueError(f"top is z2's units and the widths between z1 and z2, such as 50:100,100, not {spec[:60]!r}")
    top_dim, widths = int(found.group(1)), tuple(int(w) for w in found.group(2).split(","))
    if not 1 <= top_dim < latent_dim or min(widths) < 1:
        raise ValueError(f"top's z2 has 1 to {latent_dim - 1} units (latent_dim {latent_dim} counts z1 and z2) and "
                         f"its layers at least 1, not {spec[:60]!r}")
    return top_dim, widths


def _gaussian(outputs):
    """(mean, log_std) from a network's outputs (..., 2 d)."""
    return jnp.split(outputs, 2, axis=-1)


class Layered(NamedTuple):
    """q(z1|x) q(z2|z1): mean, log_std (..., Dz), z1's factorized Gaussian then z2's at z1 = z1's mean (the
    factorized part the figures, the defensive proposal's wide component and SVI's starts use); upper: the z1 -> z2
    network's layers, each weight (..., n_in, n_out) and bias (..., n_out) for each image."""

    has_density = True  # log q at any z (not a field: the pytree holds arrays only)

    mean: jnp.ndarray
    log_std: jnp.ndarray
    upper: list

    @property
    def top_dim(self):
        """z2's units: half the outputs of the z1 -> z2 network (a mean and a log_std each)."""
        return self.upper[-1]["bias"].shape[-1] // 2

    def _z2_given(self, z1):
        """(mean, log_std) of q(z2|z1) at z1 (..., z1's units): each (..., top_dim)."""
        return _gaussian(stack_apply(jnp.tanh, self.upper, z1))

    def sample(self, key, lead=()):
        """(z, log q(z)): z (lead..., ..., Dz) = (z1, z2), z2 drawn given the z1 drawn; log q (lead..., ...)."""
        eps = jax.random.normal(key, tuple(lead) + self.mean.shape, dtype=self.mean.dtype)
        top_dim = self.top_dim
        mean, log_std = (jnp.broadcast_to(p[..., :-top_dim], eps.shape[:-1] + (eps.shape[-1] - top_dim,))
                         for p in (self.mean, self.log_std))
        z1 = mean + jnp.exp(log_std) * eps[..., :-top_dim]
        mean2, log_std2 = self._z2_given(z1)
        z2 = mean2 + jnp.exp(log_std2) * eps[..., -top_dim:]
        z = jnp.concatenate([z1, z2], -1)
        return z, densities.standard_normal_log_density(eps) - jnp.sum(log_std, -1) - jnp.sum(log_std2, -1)

    def log_density(self, z):
        """log q(z1|x) + log q(z2|z1) at any z (..., Dz) -> (...)."""
        top_dim = self.top_dim
        z1, z2 = z[..., :-top_dim], z[..., -top_dim:]
        mean, log_std = (jnp.broadcast_to(p[..., :-top_dim], z1.shape) for p in (self.mean, self.log_std))
        mean2, log_std2 = self._z2_given(z1)
        return (densities.factorized_gaussian_log_density(mean, log_std, z1)
                + densities.factorized_gaussian_log_density(mean2, log_std2, z2))

    @property
    def location(self):
        """The point the figures draw for an image: z1's mean and z2's mean given it (..., Dz)."""
        return self.mean

    @property
    def scale(self):
        """The factorized part's standard deviations (..., Dz)."""
        return jnp.exp(self.log_std)

    def factorized(self, key):
        """(mean, log_std) of a factorized Gaussian near q, where SVI's q* starts: the factorized part (key unused)."""
        return self.mean, self.log_std


class Family(NamedTuple):
    """q(z1|x) q(z2|z1) as a family: Gaussian layers, nothing richer to fit per image (outputs: 2 Dz)."""

    q_type = Layered

    name: str = "gaussian"
    exact_kl: bool = False

    def outputs(self, latent_dim):
        """2 Dz: a Gaussian's mean and log_std per unit of z1 and z2 (the gap decomposition fits no richer q*)."""
        return 2 * latent_dim


class Prior(NamedTuple):
    """p(z2) p(z1|z2), p(z1|z2) a network of z2 (its layers under theta["prior"]) through widths."""

    top_dim: int
    widths: tuple
    needs_q_density = False  # (not a field) whether log p(z) needs q's density at any z
    exact_kl: bool = False

    words = "p(z2) p(z1|z2), z2 ~ N(0, I)"  # (not a field) the prior in words, for figures

    @property
    def name(self):
        """The prior's setting: standard (z2's), with the network of z1 given z2 below it."""
        return "standard"

    def init(self, key, latent_dim, data_dim):
        """The layers of p(z1|z2): z2 (top_dim) -> widths -> (mean, log_std) of z1 (data_dim is not used)."""
        return stack_init(key, (self.top_dim, *self.widths, 2 * (latent_dim - self.top_dim)))

    def view(self, net, params):
        """What theta["prior"] holds: the layers of p(z1|z2), params["prior"]."""
        return params["prior"]

    def _z1_given(self, theta, z2):
        return _gaussian(stack_apply(jnp.tanh, theta["prior"], z2))

    def extent(self, net, theta):
        """How far from 0 p(z) reaches along an axis where z2^2 / 2 + ((z1 - m(z2)) / s(z2))^2 / 2 <= 32 (e^-32 of
        the peak, as the standard prior's 8, s's change of the normalizer aside): 8 for z2, and for z1 abs(m(z2)) +
        s(z2) sqrt(64 - z2^2) along each of z2's axes from -8 to 8 (the exact grid's box covers it)."""
        line = jnp.linspace(-8.0, 8.0, 161)
        steps = line[:, None, None] * jnp.eye(self.top_dim)[None]  # (161, top_dim, top_dim)
        mean, log_std = self._z1_given(theta, steps.reshape(-1, self.top_dim))  # (161 top_dim, z1)
        room = jnp.sqrt(jnp.maximum(64.0 - jnp.repeat(line, self.top_dim) ** 2, 0.0))[:, None]
        return jnp.maximum(8.0, jnp.max(jnp.abs(mean) + jnp.exp(log_std) * jnp.broadcast_to(room, mean.shape)))

    def log_density(self, net, theta, z):
        """log N(z2; 0, I) + log N(z1; m(z2), diag(exp(s(z2))^2)): z (..., Dz) -> (...)."""
        top_dim = self.top_dim
        z1, z2 = z[..., :-top_dim], z[..., -top_dim:]
        mean, log_std = self._z1_given(theta, z2)
        return densities.standard_normal_log_density(z2) + densities.factorized_gaussian_log_density(mean, log_std, z1)

    def sample(self, key, net, theta, n, latent_dim):
        """n draws z (n, Dz): z2 ~ N(0, I), then z1 ~ p(z1|z2)."""
        top_key, key = jax.random.split(key)
        z2 = jax.random.normal(top_key, (n, self.top_dim))
        mean, log_std = self._z1_given(theta, z2)
        return jnp.concatenate([mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape), z2], -1)


@functools.cache
def builder(top_dim, widths):
    """The network builder (activation, image_shape, family) -> Network of two stochastic layers, one per setting
    (so that networks.build makes each Network once): the mlp's layers between x and z1, widths between z1 and z2
    (z2 of top_dim units)."""
    from . import networks  # (networks builds with it; it builds on networks' mlp)

    def build(activation, image_shape=None, family=None):
        act = networks.ACTIVATIONS[activation]

        def init(key, data_dim, config):
            hidden = networks.hidden_sizes(config)
            z1_dim = config.latent_dim - top_dim
            keys = jax.random.split(key, 2 * (len(hidden) + 1) + 1)
            phi = {**networks.mlp_layers(keys[: len(hidden) + 1], (data_dim, *hidden, 2 * z1_dim)),
                   "upper": stack_init(keys[-1], (z1_dim, *widths, 2 * top_dim))}
            theta = networks.mlp_layers(keys[len(hidden) + 1 : -1], (z1_dim, *hidden[::-1], data_dim))
            return {"encoder": phi, "decoder": theta}

        def encode(phi, x):
            mean1, log_std1 = _gaussian(networks.mlp_apply(act, {k: v for k, v in phi.items() if k != "upper"}, x))
            lead = mean1.shape[:-1]  # each image's copy of the z1 -> z2 network (q's leaves: batch axis first)
            upper = [{name: jnp.broadcast_to(value, lead + value.shape) for name, value in layer.items()}
                     for layer in phi["upper"]]
            mean2, log_std2 = _gaussian(stack_apply(jnp.tanh, upper, mean1))
            return Layered(jnp.concatenate([mean1, mean2], -1), jnp.concatenate([log_std1, log_std2], -1), upper)

        def decode(theta, z):  # p(x|z1): z2 is not an input
            return networks.mlp_apply(act, theta, z[..., : theta["hidden"]["weight"].shape[0]])

        return networks.Network(init=init, encode=encode, decode=decode)

    return build
