"""q*, the best factorized Gaussian q(z) for each image: argmax of its ELBO (Cremer, Li & Duvenaud
2018's approximation gap is log p(x) - ELBO(q*)). By SVI from the encoder's q at any Dz, or, with
Dz = 2, deterministically on the exact evaluation's tiles, where log p(x, z) is known on a grid.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..model import densities
from . import exact, partial

SPACING = 2 * exact.SPACING  # the fit's grid: a quarter of the evaluation's points (and of the work)


@jax.jit(static_argnames=("net", "steps", "num_samples", "learning_rate"))
def fit_by_svi(key, net, params, x, steps=100, num_samples=10, learning_rate=0.02):
    """q*, the best factorized Gaussian for each image (n, D), by SVI from the encoder's q: (mean, log_std)."""
    mask = jnp.ones(x.shape[-1], bool)  # every pixel observed: partial's SVI on the whole image

    def fit(fit_key, image, mean, log_std):
        return partial.svi(fit_key, net, params["decoder"], image, mask, (mean, log_std), num_samples, steps,
                           learning_rate)[0]

    return jax.vmap(fit)(jax.random.split(key, x.shape[0]), x, *net.encode(params["encoder"], x))


STEPS = 200  # Adam steps of the fit of q* on the grid (deterministic: the same q* every time)
LEARNING_RATE = 0.02


@jax.jit(static_argnames=("images",))
def grid_elbo(q, values, points, image, spacing, images, floor):
    """The ELBO of q = (mean, log_std) (N, 2) each on the tables of exact.log_joint_tables (values,
    points, image: flat over (image, point) pairs, points the centres of square cells of side
    spacing; floor (N,): a value below all of an image's): E_q[log p(x, z)] with log p(x, z) taken
    constant on each cell, so each cell weighs q's probability of it in closed form (a q narrower
    than a cell gains nothing), q's probability off the table counted at the floor (no q gains by
    leaving the posterior), plus q's entropy in closed form: (elbo (N,), q's mass on the table (N,))."""
    mean, log_std = q
    std = jnp.exp(log_std)[image]  # (G, 2)
    # Phi(b) - Phi(a) of the cell in each axis, taken on the lower side of the mean (erfc keeps that tail's digits).
    toward = -jnp.abs(points - mean[image]) / std
    half = 0.5 * spacing / std
    cell = jnp.prod(densities.standard_normal_cdf(toward + half) - densities.standard_normal_cdf(toward - half), -1)
    mass = jax.ops.segment_sum(cell, image, images, indices_are_sorted=True)
    above = jax.ops.segment_sum(cell * (values - floor[image]), image, images, indices_are_sorted=True)
    return floor + above + jnp.sum(log_std, axis=-1) + 0.5 * mean.shape[-1] * (1.0 + densities.LOG_2PI), mass


@jax.jit(static_argnames=("images", "steps", "learning_rate"))
def climb(q, values, points, image, spacing, images, floor, steps=STEPS, learning_rate=LEARNING_RATE):
    """q*, the factorized Gaussian of highest ELBO for each image, by Adam on grid_elbo from q (the
    encoder's): no sampling, so no noise in q* or in its ELBO. Images are independent, so the sum of
    their ELBOs is climbed at once. Returns (q*, the mean ELBO after each step (steps,))."""
    opt = optax.adam(learning_rate)

    def total(q):
        return jnp.sum(grid_elbo(q, values, points, image, spacing, images, floor)[0])

    def step(carry, _):
        q, opt_state = carry
        value, grads = jax.value_and_grad(lambda q: -total(q))(q)
        updates, opt_state = opt.update(grads, opt_state)
        return (optax.apply_updates(q, updates), opt_state), -value / images

    (q, _), trace = jax.lax.scan(step, (q, opt.init(q)), None, length=steps)
    return q, trace


def fit_on_grid(net, params, x, tiles, spacing=SPACING):
    """q* of each image x (n, D) on the tables of exact.log_joint_tables (tiles: exact.select_tiles
    of x), from the encoder's q: ((mean, log_std), {how it was found and how well})."""
    values, points, image = (jnp.asarray(a) for a in exact.log_joint_tables(net, params["decoder"], x, tiles,
                                                                             spacing))
    floor = jax.ops.segment_max(values, image, len(x)) - exact.THRESHOLD - 10.0  # below every value kept
    table = (values, points, image, spacing, len(x), floor)
    q_star, trace = climb(net.encode(params["encoder"], jnp.asarray(x)), *table)
    _, mass = grid_elbo(q_star, *table)
    return q_star, {"q_star": "grid", "grid_spacing": spacing, "fit_steps": STEPS,
                    "last_step_change": float(trace[-1] - trace[-2]), "smallest_mass_on_grid": float(np.min(mass))}
