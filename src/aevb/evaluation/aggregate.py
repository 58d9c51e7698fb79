"""The prior p(z) beside the aggregate posterior q(z) = (1/N) sum_n q(z | x_n) of the training images, on a grid
at Dz = 2, and KL(q || p(z)) between them: how well the prior (learned or not) covers where the encoder puts the
images. A term of the ELBO averaged over the data: the mean KL(q(z|x) || p(z)) = I(x; z) + KL(q || p(z))
(Hoffman & Johnson 2016), so a learned prior can close only the second."""

import math

import jax
import jax.numpy as jnp
import numpy as np

from ..model import probability

GRID_POINTS = 201  # along each axis (the figure's; q's mass on the grid says how well it resolves q)
AGGREGATE_IMAGES = 1000  # the training images whose q's are averaged (their first ones)
MARGIN = 5.0  # the grid reaches this many of q's standard deviations past the farthest mean, and at least +-4


@jax.jit(static_argnames=("net",))
def _log_aggregate(net, q, z):
    """log (1/N) sum_n q(z | x_n) at z (G, 2), q's parameters (N, 2) each: (G,)."""
    n = jax.tree_util.tree_leaves(q)[0].shape[0]
    per_image = jax.vmap(lambda point: q.log_density(jnp.broadcast_to(point, (n, 2))))(z)  # (G, N)
    return jax.nn.logsumexp(per_image, axis=1) - jnp.log(n)


def on_grid(net, params, x_train):
    """(axis (G,), log p(z) (G, G), log q(z) (G, G), KL(q || p(z)) in nats, q's mass on the grid), float64, q the
    aggregate of the first AGGREGATE_IMAGES training images' q(z|x) (a family with a density at any z: ValueError
    for a flow). Rows of the tables are z1, columns z2."""
    q = net.encode(params["encoder"], jnp.asarray(x_train[:AGGREGATE_IMAGES]))
    if not q.has_density:
        raise ValueError("the aggregate posterior needs q's density at any z; this posterior family gives it at its "
                         "own draws only")
    location, scale = np.asarray(q.location), np.asarray(q.scale)
    half_width = max(4.0, float(np.max(np.abs(location) + MARGIN * scale)))
    axis = np.linspace(-half_width, half_width, GRID_POINTS)
    z = np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2).astype(np.float32)
    theta = probability.generative(net, params)
    log_p = np.asarray(probability.log_p_z(net, theta, jnp.asarray(z)), np.float64)
    log_q = np.concatenate([np.asarray(_log_aggregate(net, q, jnp.asarray(chunk)), np.float64)
                            for chunk in np.array_split(z, math.ceil(len(z) / 2000))])
    cell = (axis[1] - axis[0]) ** 2
    q_mass = np.exp(log_q) * cell  # (G^2,)
    kl = float(np.sum(q_mass * (log_q - log_p)))
    return axis, log_p.reshape(GRID_POINTS, -1), log_q.reshape(GRID_POINTS, -1), kl, float(q_mass.sum())
