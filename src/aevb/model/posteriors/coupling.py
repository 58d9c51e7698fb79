"""Affine coupling flows (Dinh, Sohl-Dickstein & Bengio 2017, Real NVP): z0 ~ N(mean, diag(exp(log_std)^2)),
then K steps, each keeping one half of the coordinates (z_a) and moving the other (z_b):
z_b <- z_b exp(s(z_a)) + t(z_a), the halves alternating from step to step (even, then odd coordinates).

s and t are a small network of z_a, h = tanh(W1 z_a + c1), (s, t) = (tanh(Ws h + cs), Wt h + ct), whose weights
the encoder gives per image (amortized, as the planar flow's u, w, b): the flow is a family like any other, and
a flow fitted to one image (q*_F) fits these weights. A step's log-determinant is sum(s(z_a)) (triangular
Jacobian), s bounded in (-1, 1) per step; the inverse is closed-form, z_b = (z_b' - t(z_a)) exp(-s(z_a)), so
log q is known at any z (has_density: the defensive proposal and AIS from q work as for a Gaussian).
"""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from .. import densities
from . import flows

HIDDEN = 8  # units of each step's network: 2 Dz = 100 numbers per step and unit at Dz = 50


def halves(latent_dim, step):
    """(kept, moved): the coordinates step k keeps (even ones at even k, odd ones at odd k) and moves."""
    first, second = np.arange(0, latent_dim, 2), np.arange(1, latent_dim, 2)
    return (first, second) if step % 2 == 0 else (second, first)


def step_sizes(latent_dim, step):
    """The sizes of step k's weights, in the order the encoder gives them: W1, c1, Ws, cs, Wt, ct."""
    kept, moved = (len(h) for h in halves(latent_dim, step))
    return ((HIDDEN, kept), (HIDDEN,), (moved, HIDDEN), (moved,), (moved, HIDDEN), (moved,))


def step_outputs(latent_dim, step):
    """How many numbers step k's weights are."""
    return sum(math.prod(shape) for shape in step_sizes(latent_dim, step))


class Coupling(NamedTuple):
    """mean, log_std (..., Dz) of q0; weights (..., n), the K steps' weights one after another (step_sizes)."""

    has_density = True  # log q at any z (not a field: the pytree holds arrays only)

    mean: jnp.ndarray
    log_std: jnp.ndarray
    weights: jnp.ndarray

    def steps(self):
        """[(kept, moved, (W1, c1, Ws, cs, Wt, ct))] per step, each weight (..., its shape)."""
        latent_dim, lead = self.mean.shape[-1], self.mean.shape[:-1]
        out, at, k = [], 0, 0
        while at < self.weights.shape[-1]:
            parts = []
            for shape in step_sizes(latent_dim, k):
                size = math.prod(shape)
                parts.append(self.weights[..., at : at + size].reshape(lead + shape))
                at += size
            out.append((*halves(latent_dim, k), tuple(parts)))
            k += 1
        return out

    def _shift_scale(self, weights, z_a):
        """(s, t) of one step at z_a (lead..., ..., kept): each (lead..., ..., moved)."""
        w1, c1, ws, cs, wt, ct = weights

        def apply(matrix, bias, v):  # (..., m, n) @ (lead..., ..., n) + (..., m) -> (lead..., ..., m)
            m = matrix.shape[-2]
            product = jnp.einsum("...ij,...j->...i", jnp.broadcast_to(matrix, v.shape[:-1] + matrix.shape[-2:]), v)
            return product + jnp.broadcast_to(bias, v.shape[:-1] + (m,))

        h = jnp.tanh(apply(w1, c1, z_a))
        return jnp.tanh(apply(ws, cs, h)), apply(wt, ct, h)

    def flow(self, z):
        """z0 (lead..., ..., Dz) through the steps: (z_K, sum of the log-determinants (lead..., ...))."""
        log_det = jnp.zeros(z.shape[:-1], z.dtype)
        for kept, moved, weights in self.steps():
            s, t = self._shift_scale(weights, z[..., kept])
            z = z.at[..., moved].set(z[..., moved] * jnp.exp(s) + t)
            log_det = log_det + jnp.sum(s, -1)
        return z, log_det

    def inverse(self, z):
        """z_K (..., Dz) back to z0: (z0, the flow's log-determinant at z0 (...))."""
        log_det = jnp.zeros(z.shape[:-1], z.dtype)
        for kept, moved, weights in reversed(self.steps()):
            s, t = self._shift_scale(weights, z[..., kept])  # z_a is the same before and after the step
            z = z.at[..., moved].set((z[..., moved] - t) * jnp.exp(-s))
            log_det = log_det + jnp.sum(s, -1)
        return z, log_det

    sample = flows.sample

    def log_density(self, z):
        """log q(z) at any z (..., Dz): log q0 at the inverse image less the flow's log-determinant."""
        z0, log_det = self.inverse(z)
        mean, log_std = (jnp.broadcast_to(p, z.shape) for p in (self.mean, self.log_std))
        return densities.factorized_gaussian_log_density(mean, log_std, z0) - log_det

    location = property(flows.location)
    scale = property(flows.scale)
    factorized = flows.factorized


class Family(NamedTuple):
    """coupling:K: 2 Dz encoder outputs for q0 (mean, log_std), then each step's weights (step_outputs)."""

    q_type = Coupling  # the class of its q (not a field): what it can do, such as has_density, read before any q

    steps: int = 4
    exact_kl: bool = False

    @property
    def name(self):
        """The family's setting, such as coupling:4."""
        return f"coupling:{self.steps}"

    def outputs(self, latent_dim):
        """How many numbers the encoder gives for q at this Dz (Dz >= 2: a step keeps one half, moves the other)."""
        return 2 * latent_dim + sum(step_outputs(latent_dim, k) for k in range(self.steps))

    def embed(self, mean, log_std):
        """The outputs whose q is the factorized Gaussian (mean, log_std): every step the identity (Ws, cs, Wt,
        ct zero), W1 not zero, so that a fit from here has a gradient in Ws and Wt (h = tanh(W1 z_a) is not 0)."""
        latent_dim, lead, parts = mean.shape[-1], mean.shape[:-1], [mean, log_std]
        for k in range(self.steps):
            for i, shape in enumerate(step_sizes(latent_dim, k)):
                value = (jnp.eye(*shape, dtype=mean.dtype) if i == 0 else jnp.zeros(shape, mean.dtype)).reshape(-1)
                parts.append(jnp.broadcast_to(value, lead + value.shape))
        return jnp.concatenate(parts, -1)

    def q(self, outputs):
        """q from the encoder's outputs (..., outputs(Dz))."""
        latent_dim = next(d for d in range(1, outputs.shape[-1] + 1) if self.outputs(d) == outputs.shape[-1])
        return Coupling(outputs[..., :latent_dim], outputs[..., latent_dim : 2 * latent_dim],
                        outputs[..., 2 * latent_dim :])


FAMILY = Family()
