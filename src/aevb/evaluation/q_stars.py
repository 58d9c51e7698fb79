"""q*, the best factorized Gaussian q(z) for each image: argmax of its ELBO (Cremer, Li & Duvenaud
2018's approximation gap is log p(x) - ELBO(q*)). By SVI from the encoder's q at any Dz, or, with
Dz = 2, deterministically on the exact evaluation's tiles, where log p(x, z) is known on a grid.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..model import densities, probability
from . import exact, partial

SPACINGS = (0.04, 0.08, 0.2, 0.4)  # the fit's grids, finest first: each divides a tile's side
RESOLUTION = 1.5  # a cell's side at most this many times finer than the posterior's narrowest standard deviation
PROBE = 0.2  # the grid of the posterior's moments that choose each image's spacing
LEARNING_RATE = 0.02  # Adam's, for the fit of q* on the grid (deterministic: the same q* every time)
CHECK = 10  # steps between the fit's checks of convergence
TOLERANCE = 1e-4  # nats per image over CHECK steps: converged
MAX_STEPS = 1000


START = 0x57A7  # folded into fit_by_svi's key for the draws of a start made of q's moments (flows)


@jax.jit(static_argnames=("net", "steps", "num_samples", "learning_rate"))
def fit_by_svi(key, net, params, x, steps=100, num_samples=10, learning_rate=0.02):
    """q*, the best factorized Gaussian for each image (n, D), by SVI from the encoder's q: (mean, log_std), started
    at the factorized Gaussian its family gives near q (q.factorized: a Gaussian's own, a full Gaussian's marginals,
    a flow's moments of its draws). steps: Adam steps on (mean, log_std), num_samples draws each."""
    mask = jnp.ones(x.shape[-1], bool)  # every pixel observed: partial's SVI on the whole image

    def fit(fit_key, image, mean, log_std):
        return partial.svi(fit_key, net, probability.generative(net, params), image, mask, (mean, log_std),
                           num_samples, steps, learning_rate)[0]

    q = net.encode(params["encoder"], x)  # the factorized Gaussian's start is itself: the same as ever
    return jax.vmap(fit)(jax.random.split(key, x.shape[0]), x, *q.factorized(jax.random.fold_in(key, START)))


BLOCK = 64  # table points per block of grid_elbo's layout: each block one image's (scatters over blocks, not points)


def in_blocks(values, points, image, spacing, images):
    """The flat tables of `tables` (G,) laid out in blocks of BLOCK points, each block one image's, the
    last of an image padded: (values (K, BLOCK), points (K, BLOCK, 2), real (K, BLOCK) bool, block_image
    (K,), spacing (K,)). Sums over an image's points become sums within blocks (vectorized) and a
    segment sum over blocks; over points (scatters on a CPU) a step took 2.7x longer.
    images: N, the number of images."""
    image = np.asarray(image)
    counts = np.bincount(image, minlength=images)  # (N,) points of each image
    blocks = -(-counts // BLOCK)  # (N,) its blocks
    first_point, first_slot = np.cumsum(counts) - counts, (np.cumsum(blocks) - blocks) * BLOCK  # (N,) each
    slot = first_slot[image] + np.arange(len(image)) - first_point[image]  # (G,) each point's place in the blocks
    laid_out = []
    for a, fill in ((values, 0.0), (points, 0.0), (np.ones(len(image), bool), False)):
        a = np.asarray(a)
        padded = np.full((blocks.sum() * BLOCK, *a.shape[1:]), fill, a.dtype)
        padded[slot] = a
        laid_out.append(jnp.asarray(padded.reshape(-1, BLOCK, *a.shape[1:])))
    block_image = np.repeat(np.arange(images), blocks)  # (K,)
    return (*laid_out, jnp.asarray(block_image, jnp.int32), jnp.asarray(np.asarray(spacing)[first_point[block_image]]))


@jax.jit(static_argnames=("images",))
def grid_elbo(q, blocks, images, floor):
    """The ELBO of q = (mean, log_std) (N, 2) each on the tables of exact.log_joint_tables laid out by
    in_blocks (blocks: values, points, real (K, BLOCK, ...); block_image, spacing (K,): points the centres
    of square cells of side spacing; floor (N,): a value below all of an image's): E_q[log p(x, z)] with log p(x, z)
    taken constant on each cell, so each cell weighs q's probability of it in closed form (a q narrower
    than a cell gains nothing), off the table at ``floor - |z|^2 / 2``, below log p(x, z) there (whose
    log p(z) falls so: a q grown wide off the table loses more than its entropy gains), plus q's
    entropy in closed form: (elbo (N,), q's mass on the table (N,)).
    images: N, the number of images (static: the segment sum's size)."""
    (mean, log_std), (values, points, real, block_image, spacing) = q, blocks
    std = jnp.exp(log_std)[block_image][:, None]  # (K, 1, 2)
    # Phi(b) - Phi(a) of the cell in each axis, taken on the lower side of the mean (erfc keeps that tail's digits).
    toward = -jnp.abs(points - mean[block_image][:, None]) / std  # (K, BLOCK, 2)
    half = 0.5 * spacing[:, None, None] / std
    cell = jnp.prod(densities.standard_normal_cdf(toward + half) - densities.standard_normal_cdf(toward - half), -1)
    cell = jnp.where(real, cell, 0.0)  # (K, BLOCK): the padding weighs nothing
    off = floor[block_image][:, None] - 0.5 * jnp.sum(points**2, axis=-1)  # the off-table charge at each point

    def per_image(per_point):  # (K, BLOCK) -> (N,)
        return jax.ops.segment_sum(jnp.sum(per_point, axis=1), block_image, images, indices_are_sorted=True)

    mass, above = per_image(cell), per_image(cell * (values - off))
    expected_off = floor - 0.5 * jnp.sum(mean**2 + jnp.exp(2 * log_std), axis=-1)  # E_q of the charge, everywhere
    return expected_off + above + jnp.sum(log_std, axis=-1) + 0.5 * mean.shape[-1] * (1.0 + densities.LOG_2PI), mass


@jax.jit(static_argnames=("images", "learning_rate"))
def climb(q, blocks, images, floor, learning_rate=LEARNING_RATE):
    """q*, the factorized Gaussian of highest ELBO for each image, by Adam on grid_elbo from q: no
    sampling, so no noise in q* or in its ELBO. Images are independent, so the sum of their ELBOs is
    climbed at once, CHECK steps at a time, until CHECK steps raise the mean ELBO by less than
    TOLERANCE nats or MAX_STEPS are taken. Returns (q*, steps taken, the last CHECK steps' change).
    blocks, images, floor: as grid_elbo takes them (images: how many, static)."""
    opt = optax.adam(learning_rate)

    def mean_elbo(q):
        return jnp.sum(grid_elbo(q, blocks, images, floor)[0]) / images

    def step(carry, _):
        q, opt_state = carry
        grads = jax.grad(lambda q: -mean_elbo(q))(q)
        updates, opt_state = opt.update(grads, opt_state)
        return (optax.apply_updates(q, updates), opt_state), None

    def more(carry):
        _, _, steps, change = carry
        return (steps < MAX_STEPS) & (jnp.abs(change) >= TOLERANCE)

    def block(carry):
        q, opt_state, steps, _ = carry
        before = mean_elbo(q)
        (q, opt_state), _ = jax.lax.scan(step, (q, opt_state), None, length=CHECK)
        return q, opt_state, steps + CHECK, mean_elbo(q) - before

    q, _, steps, change = jax.lax.while_loop(more, block, (q, opt.init(q), jnp.int32(0), jnp.float32(jnp.inf)))
    return q, steps, change


def spacings(probe, images):
    """The fit's grid spacing for each image (N,): the coarsest of SPACINGS at most RESOLUTION times
    finer than its posterior's narrowest standard deviation, from the moments on the PROBE grid
    (probe: exact.log_joint_tables at PROBE; the finest where narrower). q*'s loss from its grid is
    quadratic in the spacing: on a test model (posterior std 0.48), q* fitted at 0.2 and at 0.04 have
    float64 ELBOs 1e-5 nats apart.
    images: N, the number of images."""
    values, points, image = (jnp.asarray(a) for a in probe)
    _, log_std = moments(values, points, image, jnp.full(len(values), PROBE), images)
    narrowest = np.exp(np.min(np.asarray(log_std), axis=-1))  # (N,)
    fine_enough = np.array(SPACINGS)[None] <= narrowest[:, None] / RESOLUTION  # (N, levels)
    return np.array(SPACINGS)[np.maximum(np.sum(fine_enough, axis=1) - 1, 0)]


def tables(net, theta, x, tiles):
    """exact.log_joint_tables of each image at its spacing (spacings), flat over (image, point) pairs
    in image order: (values (G,), points (G, 2), image (G,), spacing (G,)), as float32 arrays; and
    each image's spacing (N,).
    tiles: exact.select_tiles' output for x."""
    lows, kept, coarse = tiles
    probe = exact.log_joint_tables(net, theta, x, tiles, PROBE)
    each = spacings(probe, len(x))
    parts = []
    for spacing in np.unique(each):
        ids = np.nonzero(each == spacing)[0]
        if spacing == PROBE:  # the probe's own rows: an image's table does not depend on the other images
            values, points, image = (a[np.isin(probe[2], ids)] for a in probe)
        else:
            values, points, image = exact.log_joint_tables(net, theta, x[ids], (lows, kept[ids], coarse), spacing)
            image = ids[image]
        parts.append((values, points, image, np.full(len(values), spacing)))
    values, points, image, spacing = (np.concatenate(a) for a in zip(*parts, strict=True))
    order = np.argsort(image, kind="stable")
    return tuple(jnp.asarray(a[order], jnp.float32 if a.dtype.kind == "f" else None)
                 for a in (values, points, image, spacing)), each


@jax.jit(static_argnames=("images",))
def moments(values, points, image, spacing, images):
    """The Gaussian with the posterior's mean and variance along each axis, from the tables (a cell
    adds its own spread, spacing^2 / 12): (mean, log_std) (N, 2) each.
    values, points, image: the flat tables (G,), (G, 2), (G,) of `tables`; images: N, the number of images."""
    weight = jnp.exp(values - jax.ops.segment_max(values, image, images)[image])
    total = jax.ops.segment_sum(weight, image, images, indices_are_sorted=True)
    weight = weight / total[image]
    mean = jax.ops.segment_sum(weight[:, None] * points, image, images, indices_are_sorted=True)
    spread = weight[:, None] * ((points - mean[image]) ** 2 + spacing[:, None] ** 2 / 12)
    return mean, 0.5 * jnp.log(jax.ops.segment_sum(spread, image, images, indices_are_sorted=True))


def _gaussian_part(q):
    """The encoder's factorized Gaussian (mean, log_std): q itself, or a richer family's base (q0 of a flow)."""
    return q.mean, q.log_std


def fit_on_grid(net, params, x, tiles):
    """q* of each image x (n, D) on the tables of exact.log_joint_tables (tiles: exact.select_tiles
    of x), each at its spacing (spacings: a wider posterior, a coarser grid), climbed from the
    encoder's q and from the posterior's moments, the higher kept (an encoder's q can sit off the
    posterior, where no step climbs; the moments of two modes can sit between them):
    ((mean, log_std), {how it was found and how well})."""
    (values, points, image, spacing), used = tables(net, probability.generative(net, params), np.asarray(x), tiles)
    floor = jax.ops.segment_max(values, image, len(x)) - exact.THRESHOLD - 10.0  # below every value kept
    table = (in_blocks(values, points, image, spacing, len(x)), len(x), floor)
    (encoder, steps, change), (moment, moment_steps, moment_change) = (climb(start, *table) for start in (
        _gaussian_part(net.encode(params["encoder"], jnp.asarray(x))), moments(values, points, image, spacing, len(x))))
    (elbo, mass), (moment_elbo, moment_mass) = grid_elbo(encoder, *table), grid_elbo(moment, *table)
    from_moments = moment_elbo > elbo  # (N,)
    q_star = jax.tree.map(lambda a, b: jnp.where(from_moments[:, None], a, b), moment, encoder)
    mass = jnp.where(from_moments, moment_mass, mass)
    return q_star, {"q_star": "grid", "grid_spacings": {f"{s:g}": int(np.sum(used == s)) for s in np.unique(used)},
                    "fit_steps": {"encoder": int(steps), "moments": int(moment_steps)},
                    "last_change": {"encoder": float(change), "moments": float(moment_change)},
                    "from_moments": int(np.sum(from_moments)), "smallest_mass_on_grid": float(np.min(mass))}


FAMILY_STEPS, FAMILY_SAMPLES, FAMILY_LEARNING_RATE = 300, 20, 0.01  # the per-image fit of a richer family's q*_F


@jax.jit(static_argnames=("net", "steps", "num_samples", "learning_rate", "family"))
def fit_family(key, net, params, x, start, steps=FAMILY_STEPS, num_samples=FAMILY_SAMPLES,
               learning_rate=FAMILY_LEARNING_RATE, family=None):
    """q*_F, the best member of a posterior family F (family; None: the network's own) for each image x (n, D), by
    SVI on the family's parameters themselves (what the encoder would output, (n, outputs)), from start = (mean, log_std),
    the best factorized Gaussian, embedded in the family (a flow at the identity, a Cholesky factor at the
    diagonal): q*_F starts where q* is (Cremer, Li & Duvenaud 2018's local optimization). Adam with a cosine decay,
    num_samples reparameterized draws per image and step; the objective is the sum over images, so each image's
    parameters get its own ELBO's gradient whatever n is. Returns ((the start's outputs, the fitted outputs),
    each (n, outputs), the ELBO trace (steps,) of the mean): the caller keeps, per image, the better of the two."""
    family, theta = family or net.family, probability.generative(net, params)
    outputs = family.embed(*start)  # (n, outputs)
    opt = optax.adam(optax.cosine_decay_schedule(learning_rate, steps))  # steps shrink to 0: no jitter at the end

    def loss(outputs, step_key):  # the sum: each image's parameters get its own ELBO's gradient, whatever n is
        return -jnp.sum(probability.elbo_of(step_key, net, theta, x, family.q(outputs), num_samples))

    def step(carry, step_key):
        outputs, opt_state = carry
        value, grads = jax.value_and_grad(loss)(outputs, step_key)
        updates, opt_state = opt.update(grads, opt_state)
        return (optax.apply_updates(outputs, updates), opt_state), -value / x.shape[0]

    (fitted, _), trace = jax.lax.scan(step, (outputs, opt.init(outputs)), jax.random.split(key, steps))
    return (outputs, fitted), trace
