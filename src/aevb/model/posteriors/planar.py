"""Planar flows (Rezende & Mohamed 2015, Section 4.1): z0 ~ N(mean, diag(exp(log_std)^2)), then K steps
z_k = z_{k-1} + u_k tanh(w_k^T z_{k-1} + b_k), each step's parameters amortized (given by the encoder).

log q(z_K) = log q0(z0) - sum_k log abs(1 + u_k^T psi_k), psi_k = (1 - tanh^2(w_k^T z_{k-1} + b_k)) w_k (eq. 11).
Each step stays invertible by the paper's constraint (Appendix A.1): u is replaced by
u + (m(w^T u) - w^T u) w / (w^T w) with m(a) = -1 + softplus(a), so that w^T u >= -1. The flow has no closed-form
inverse, so log q is known at q's own draws only (has_density False: in the defensive proposal a Gaussian at the
moments of q's draws stands in for q; AIS starts from the prior).
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from . import flows


IDENTITY_U = 0.5413248546129181  # log(e - 1): softplus of it is 1, so m(w^T u) = 0 for u = it * w with w^T w = 1


def constrained_u(u, w):
    """u (..., Dz) moved along w so that w^T u >= -1 (Rezende & Mohamed 2015, Appendix A.1)."""
    wu = jnp.sum(w * u, axis=-1, keepdims=True)  # (..., 1)
    shift = (jax.nn.softplus(wu) - 1.0 - wu) / jnp.sum(w * w, axis=-1, keepdims=True)
    return u + jnp.broadcast_to(shift, w.shape) * w


class Planar(NamedTuple):
    """mean, log_std (..., Dz) of q0; u, w (..., K, Dz) and b (..., K), the K steps' parameters (u unconstrained)."""

    has_density = False  # log q at any z (not a field: the pytree holds arrays only)

    mean: jnp.ndarray
    log_std: jnp.ndarray
    u: jnp.ndarray
    w: jnp.ndarray
    b: jnp.ndarray

    def flow(self, z):
        """z0 (lead..., ..., Dz) through the K steps: (z_K, sum_k log abs(det dz_k / dz_{k-1})) of shapes z0's, (lead..., ...)."""
        u = constrained_u(self.u, self.w)
        log_det = jnp.zeros(z.shape[:-1], z.dtype)
        for k in range(self.u.shape[-2]):
            u_k, w_k = (jnp.broadcast_to(p[..., k, :], z.shape) for p in (u, self.w))
            h = jnp.tanh(jnp.sum(w_k * z, axis=-1) + jnp.broadcast_to(self.b[..., k], z.shape[:-1]))  # (lead..., ...)
            psi_u = (1.0 - h**2) * jnp.sum(w_k * u_k, axis=-1)  # u^T psi
            z = z + u_k * h[..., None]
            log_det = log_det + jnp.log(jnp.abs(1.0 + psi_u))
        return z, log_det

    sample = flows.sample

    def log_density(self, z):
        """Not available: the flow has no closed-form inverse (NotImplementedError)."""
        raise NotImplementedError("a planar flow's log q is known at its own draws only (no closed-form inverse)")

    location = property(flows.location)
    scale = property(flows.scale)
    factorized = flows.factorized


class Family(NamedTuple):
    """planar:K: 2 Dz + K (2 Dz + 1) encoder outputs: mean, log_std, then u (K Dz), w (K Dz), b (K)."""

    q_type = Planar  # the class of its q (not a field): what it can do, such as has_density, read before any q

    steps: int = 8
    exact_kl: bool = False

    @property
    def name(self):
        """The family's setting, such as planar:8."""
        return f"planar:{self.steps}"

    def outputs(self, latent_dim):
        """How many numbers the encoder gives for q at this Dz."""
        return 2 * latent_dim + self.steps * (2 * latent_dim + 1)

    def embed(self, mean, log_std):
        """The outputs whose q is the factorized Gaussian (mean, log_std): each step the identity, b = 0 and u
        = log(e - 1) w / (w^T w), which the constraint maps to 0 (m(log(e - 1)) = 0), w the unit vectors in turn."""
        dz, lead = mean.shape[-1], mean.shape[:-1]
        w = jnp.broadcast_to(jnp.eye(dz, dtype=mean.dtype)[jnp.arange(self.steps) % dz], lead + (self.steps, dz))
        u = IDENTITY_U * w
        return jnp.concatenate([mean, log_std, u.reshape(lead + (-1,)), w.reshape(lead + (-1,)),
                                jnp.zeros(lead + (self.steps,), mean.dtype)], -1)

    def q(self, outputs):
        """q from the encoder's outputs (..., outputs(Dz))."""
        k = self.steps
        dz = (outputs.shape[-1] - k) // (2 + 2 * k)
        lead = outputs.shape[:-1]
        mean, log_std = outputs[..., :dz], outputs[..., dz : 2 * dz]
        u = outputs[..., 2 * dz : 2 * dz + k * dz].reshape(lead + (k, dz))
        w = outputs[..., 2 * dz + k * dz : 2 * dz + 2 * k * dz].reshape(lead + (k, dz))
        return Planar(mean, log_std, u, w, outputs[..., 2 * dz + 2 * k * dz :])


FAMILY = Family()
