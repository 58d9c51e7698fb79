"""Hamiltonian Monte Carlo (Neal 2011, "MCMC using Hamiltonian dynamics"), written out by hand.

kernel(key, state, log_density, step_size) -> (state, info) is one transition that leaves the density
f (up to its normalizer) invariant: fresh standard-normal momenta, leapfrog steps on log f with its
gradient by autodiff (jax.vjp), and a Metropolis test with our own uniform draw. Every chain is independent:
log_density maps z (..., Dz) to (...), each value depending on its own z only, and step_size is
broadcast against those leading axes (one per image, shared by its chains, for example).
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp


class State(NamedTuple):
    z: jax.Array  # (..., Dz) the positions
    log_density: jax.Array  # (...) log f(z)
    grad: jax.Array  # (..., Dz) the gradient of log f at z


def value_and_grad(log_density, z):
    """log f(z) (...) and its gradient (..., Dz), every chain's own: one forward and one backward pass."""
    values, pullback = jax.vjp(log_density, z)
    return values, pullback(jnp.ones_like(values))[0]


def init(log_density, z):
    """The state at z for the density log_density."""
    return State(z, *value_and_grad(log_density, z))


def kernel(key, state, log_density, step_size, leapfrog_steps=10):
    """One HMC transition: leapfrog_steps steps of size step_size (broadcast against state.log_density),
    accepted with probability min(1, exp(H_start - H_end)), H(z, p) = -log f(z) + |p|^2 / 2. Costs
    leapfrog_steps evaluations of log f and its gradient (the state carries those at its z).
    Returns (state, info): info["acceptance"] the Metropolis probability per chain (...), info["accepted"]."""
    momentum_key, accept_key = jax.random.split(key)
    eps = jnp.expand_dims(jnp.broadcast_to(step_size, state.log_density.shape), -1)  # (..., 1)
    momentum = jax.random.normal(momentum_key, state.z.shape)  # (..., Dz)

    def leapfrog(carry, _):  # a half kick, a drift and a half kick: the leapfrog integrator, reversible
        z, p, _, grad = carry
        p = p + 0.5 * eps * grad
        z = z + eps * p
        value, grad = value_and_grad(log_density, z)
        return (z, p + 0.5 * eps * grad, value, grad), None

    (z, p, value, grad), _ = jax.lax.scan(leapfrog, (state.z, momentum, state.log_density, state.grad), None,
                                          length=leapfrog_steps)
    log_accept = (value - 0.5 * jnp.sum(p**2, -1)) - (state.log_density - 0.5 * jnp.sum(momentum**2, -1))
    log_accept = jnp.where(jnp.isnan(log_accept), -jnp.inf, log_accept)  # a diverged trajectory is refused
    accepted = jnp.log(jax.random.uniform(accept_key, log_accept.shape)) < log_accept  # (...)
    keep = jnp.expand_dims(accepted, -1)
    new = State(jnp.where(keep, z, state.z), jnp.where(accepted, value, state.log_density),
                jnp.where(keep, grad, state.grad))
    return new, {"acceptance": jnp.exp(jnp.minimum(log_accept, 0.0)), "accepted": accepted}
