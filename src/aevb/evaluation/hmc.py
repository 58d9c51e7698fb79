"""Hamiltonian Monte Carlo (Neal 2011, "MCMC using Hamiltonian dynamics"), written out by hand.

kernel(key, state, log_density, step_size) -> (state, info) is one transition that leaves the density
f (up to its normalizer) invariant: fresh standard-normal momenta, leapfrog steps on log f with its
gradient by autodiff (jax.vjp), and a Metropolis test with our own uniform draw. Every chain is independent:
log_density maps z (..., Dz) to (...), each value depending on its own z only, and step_size is
broadcast against those leading axes (one per image, shared by its chains, for example).
log_density may also be a Gradient: a density that gives its own gradient and parts of each point for the
caller to carry (AIS carries the target and its start density apart, so that the next distribution's
value and gradient at the same point cost no new pass through the decoder).
"""

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp


class State(NamedTuple):
    """A chain's point with its log density and gradient there, as a kernel carries it from step to step."""

    z: jax.Array  # (..., Dz) the positions
    log_density: jax.Array  # (...) log f(z)
    grad: jax.Array  # (..., Dz) the gradient of log f at z
    parts: Any = ()  # a Gradient's parts at z (a pytree of (...) or (..., Dz) arrays); () for a plain density


class Gradient(NamedTuple):
    """A log density that computes its own gradient: evaluate(z) -> (log f(z) (...), its gradient
    (..., Dz), parts at z), parts whatever the caller wants kept with each point (State.parts)."""

    evaluate: Callable


def _evaluator(log_density):
    """z -> (log f(z), its gradient, parts) for a plain log density (autodiff, no parts) or a Gradient."""
    if isinstance(log_density, Gradient):
        return log_density.evaluate
    return lambda z: (*value_and_grad(log_density, z), ())


def value_and_grad(log_density, z):
    """log f(z) (...) and its gradient (..., Dz), every chain's own: one forward and one backward pass.
    log_density: a function z (..., Dz) -> (...), each chain's value depending on its own z only."""
    values, pullback = jax.vjp(log_density, z)
    return values, pullback(jnp.ones_like(values))[0]


def init(log_density, z):
    """The state at z for the density log_density."""
    return State(z, *value_and_grad(log_density, z))


def kernel(key, state, log_density, step_size, leapfrog_steps=10):
    """One HMC transition: leapfrog_steps steps of size step_size (broadcast against state.log_density),
    accepted with probability min(1, exp(H_start - H_end)), ``H(z, p) = -log f(z) + |p|^2 / 2``. Costs
    leapfrog_steps evaluations of log f and its gradient (the state carries those at its z).
    log_density: z -> log f(z), differentiated by autodiff, or a Gradient. Returns (state, info):
    info["acceptance"] the Metropolis probability per chain (...), info["accepted"]."""
    momentum_key, accept_key = jax.random.split(key)
    eps = jnp.expand_dims(jnp.broadcast_to(step_size, state.log_density.shape), -1)  # (..., 1)
    momentum = jax.random.normal(momentum_key, state.z.shape)  # (..., Dz)
    evaluate = _evaluator(log_density)

    def leapfrog(carry, _):  # a half kick, a drift and a half kick: the leapfrog integrator, reversible
        z, p, _, grad, _ = carry
        p = p + 0.5 * eps * grad
        z = z + eps * p
        value, grad, parts = evaluate(z)
        return (z, p + 0.5 * eps * grad, value, grad, parts), None

    (z, p, value, grad, parts), _ = jax.lax.scan(
        leapfrog, (state.z, momentum, state.log_density, state.grad, state.parts), None, length=leapfrog_steps)
    log_accept = (value - 0.5 * jnp.sum(p**2, -1)) - (state.log_density - 0.5 * jnp.sum(momentum**2, -1))
    log_accept = jnp.where(jnp.isnan(log_accept), -jnp.inf, log_accept)  # a diverged trajectory is refused
    accepted = jnp.log(jax.random.uniform(accept_key, log_accept.shape)) < log_accept  # (...)

    def choose(proposed, current):  # the proposal where accepted, per chain: (...) or (..., Dz)
        keep = jnp.reshape(accepted, accepted.shape + (1,) * (proposed.ndim - accepted.ndim))
        return jnp.where(jnp.broadcast_to(keep, proposed.shape), proposed, current)

    new = jax.tree.map(choose, State(z, value, grad, parts), state)
    return new, {"acceptance": jnp.exp(jnp.minimum(log_accept, 0.0)), "accepted": accepted}
