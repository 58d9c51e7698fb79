"""Exact log p(x) for a 2-D latent: log of the integral of p(x|z) p(z) over z, by quadrature.

A uniform grid of cell centres z_g with spacing h: p(x) ~ h^2 sum_g p(x|z_g) p(z_g), the midpoint
rule, whose error for a smooth integrand that decays falls like exp(-2 pi^2 sigma^2 / h^2) for a
posterior of width sigma (it is spectrally accurate), so a spacing at or below the narrowest
posterior's width leaves errors far below 0.01 nats. Most of the plane holds no posterior mass of a
given image, so the plane is cut into tiles, and each image is integrated over the tiles where its
mass lies: a coarse look over [-extent, extent]^2 keeps the tiles whose log p(x, z) comes within
`threshold` nats of the image's maximum, and their neighbours. For each kept tile the decoder's
logits L (P, D) are computed once and shared by every image that needs the tile:
log p(x|z_g) = x . l_g - sum_d softplus(l_gd), one matmul X @ L^T (n, P) minus a row term,
accumulated over tiles with a running log-sum-exp. Memory is bounded by one tile and one chunk.
On several devices (aevb.parallel) each chunk's images are split over them and a tile's logits
are computed on each: nothing is drawn at random, so the numbers are those of one device.
"""

import math
import time

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from .. import parallel
from ..errors import ConfigError, Interrupted
from ..model import probability

TILE = 0.4  # a tile's side in z units
COARSE = 4  # coarse cells along a tile's side: the coarse look's spacing is TILE / COARSE = 0.1
SPACING = 0.02  # the fine grid's spacing: at most the narrowest posterior's width (see the accuracy check)
EXTENT = 8.0  # the coarse look covers [-EXTENT, EXTENT]^2 (N(0, I)'s there is e^-32 of its peak; see model_extent)
MAX_EXTENT = 24.0  # the widest box: 120 x 120 tiles, (images, 14 400) coarse maxima (gigabytes past it)
THRESHOLD = 30.0  # nats below an image's coarse maximum that a tile may be and still count
IMAGE_CHUNK = 512  # images per compiled call: memory ~ IMAGE_CHUNK * points of one tile * 4 bytes


def cell_centres(lows, side, spacing):
    """The centres of the spacing-cells of the squares [low, low + side)^2: (len(lows), m * m, 2)."""
    m = int(round(side / spacing))
    offsets = (np.arange(m) + 0.5) * spacing
    grid = np.stack(np.meshgrid(offsets, offsets, indexing="ij"), -1).reshape(-1, 2)  # (m*m, 2)
    return (np.asarray(lows, np.float64)[:, None, :] + grid[None]).astype(np.float32)


# The grid's matmuls in full float32: a GPU's default precision (TF32 on an H200) moved log p(x) by
# up to 7e-3 nats per image in the accuracy check, float32 by 2.5e-5 (measured); a CPU computes
# float32 either way.
PRECISION = "highest"


@jax.jit(static_argnames=("net",))
def _tile_terms(net, theta, z):
    """For the points z (P, 2): the decoder's logits (P, D) and the row term sum_d softplus - log p(z) (P,)."""
    with jax.default_matmul_precision(PRECISION):
        logits = net.decode(theta, z)
    return logits, jnp.sum(jax.nn.softplus(logits), axis=-1) - probability.log_p_z(net, theta, z)


@jax.jit
def _log_joint(x, logits, row):
    """log p(x, z_g) = x . l_g - row_g for images x (n, D) and points g: (n, P)."""
    with jax.default_matmul_precision(PRECISION):
        return x @ logits.T - jnp.broadcast_to(row, (x.shape[0], row.shape[0]))


TILES_PER_STEP = 100  # the coarse look's tiles per step: (n, 1600) log joints that stay in cache, 2x faster


@jax.jit(static_argnames=("tiles",))
def _tile_maxima(x, logits, row, tiles):
    """The largest coarse log p(x, z) of each image in each tile: (n, tiles); points are tile-major.
    A few tiles at a time (lax.map): the same maxima bit for bit as all at once (measured)."""
    per = max(d for d in range(1, TILES_PER_STEP + 1) if tiles % d == 0)
    steps = (logits.reshape(tiles // per, -1, logits.shape[-1]), row.reshape(tiles // per, -1))  # per tiles each
    maxima = jax.lax.map(lambda part: jnp.max(_log_joint(x, *part).reshape(x.shape[0], per, -1), axis=-1), steps)
    return jnp.moveaxis(maxima, 0, 1).reshape(x.shape[0], tiles)  # (tiles / per, n, per) -> (n, tiles)


@jax.jit
def _log_sum(x, logits, row, kept):
    """log sum_g p(x, z_g) over the points of the tiles each image keeps: kept (n, G) for G tiles of
    P points each (points tile-major); -inf for an image that keeps none of them."""
    log_joint = _log_joint(x, logits, row).reshape(x.shape[0], kept.shape[1], -1)  # (n, G, P)
    return jax.nn.logsumexp(jnp.where(jnp.broadcast_to(kept[:, :, None], log_joint.shape), log_joint, -jnp.inf),
                            axis=(1, 2))


def _groups(needed, n_side):
    """The needed tiles in 2x2 blocks of neighbours (one compiled call each: a quarter of the calls,
    and an image's tiles are neighbours): lists of four tile indices, -1 where a block has no tile."""
    blocks = {}
    for t in needed:
        blocks.setdefault((t // n_side // 2, t % n_side // 2), []).append(int(t))
    return [members + [-1] * (4 - len(members)) for members in blocks.values()]


def _blocks(kept, n_tiles):
    """For each block of _groups over the tiles any image keeps: (its four tile indices, an absent
    tile repeating one, kept by none; which images keep each of them (N, 4))."""
    for group in _groups(np.nonzero(kept.any(axis=0))[0], int(round(math.sqrt(n_tiles)))):
        members = np.array([t if t >= 0 else group[0] for t in group])
        yield members, kept[:, members] & (np.array(group) >= 0)


def _chunks(ids, devices):
    """Image indices in chunks padded to a few fixed sizes (few compilations) and to a multiple of
    the device count: (padded ids, how many real)."""
    for start in range(0, len(ids), IMAGE_CHUNK):
        part = ids[start : start + IMAGE_CHUNK]
        size = min(IMAGE_CHUNK, 1 << max(5, (len(part) - 1).bit_length()))
        yield devices.pad(np.concatenate([part, np.full(size - len(part), part[0])])), len(part)


def _points(devices, lows, side, spacing):
    """The cell centres of the tiles at lows as one array (P, 2), on every device."""
    return devices.replicate(jnp.asarray(cell_centres(lows, side, spacing).reshape(-1, 2)))


def model_extent(net, theta):
    """The coarse look's half-width: EXTENT, or where a learned prior reaches farther (prior.extent), in whole
    tiles, at most MAX_EXTENT (past it the grown-extent check and gaps.describe say what the box leaves out)."""
    reach = float(net.prior.extent(net, theta))
    return EXTENT if reach <= EXTENT else min(MAX_EXTENT, TILE * math.ceil(round(reach / TILE, 6)))


def select_tiles(net, theta, x, extent=None, threshold=THRESHOLD, coarse=COARSE, grow=True, devices=parallel.ONE):
    """Which tiles each image needs: (tile lower corners (T, 2), kept (N, T) bool, coarse points).
    coarse: coarse cells along a tile's side; grow: add every kept tile's neighbours.
    extent: z's box is [-extent, extent]^2 at most (None: model_extent's); threshold: nats below the image's highest
    coarse value where a tile is dropped."""
    extent = model_extent(net, theta) if extent is None else extent
    n_side = int(round(2 * extent / TILE))
    corners = -extent + TILE * np.arange(n_side)
    lows = np.stack(np.meshgrid(corners, corners, indexing="ij"), -1).reshape(-1, 2)  # (T, 2), row-major
    logits, row = _tile_terms(net, devices.replicate(theta), _points(devices, lows, TILE, TILE / coarse))
    maxima = np.concatenate([devices.gather(_tile_maxima(devices.split(jnp.asarray(x[ids])), logits, row,
                                                         len(lows)))[:n]
                             for ids, n in _chunks(np.arange(len(x)), devices)])  # (N, T)
    kept = maxima >= maxima.max(axis=1, keepdims=True) - threshold
    tiles = lows, kept, len(lows) * coarse**2
    return grown(tiles) if grow else tiles


def grown(tiles):
    """select_tiles's tiles with every kept tile's neighbours kept too: mass just across a tile's edge,
    between two coarse points, counts too."""
    lows, kept, coarse_points = tiles
    n_side = int(round(math.sqrt(len(lows))))
    grid = kept.reshape(len(kept), n_side, n_side)
    padded = np.pad(grid, ((0, 0), (1, 1), (1, 1)))
    result = np.zeros_like(grid)
    for di in range(3):
        for dj in range(3):
            result |= padded[:, di : di + n_side, dj : dj + n_side]
    return lows, result.reshape(len(kept), -1), coarse_points


def log_px(net, theta, x, spacing=SPACING, extent=None, threshold=THRESHOLD, tiles=None, progress=False,
           desc="exact log p(x)", devices=parallel.ONE):
    """log p(x) of each image (N,) in float64 nats, and what it cost: {"points", "flops", "seconds", ...}.

    tiles: the output of select_tiles, to reuse it (the accuracy check halves the spacing on the same tiles).
    devices: each chunk's images split over them.
    extent: z's box is [-extent, extent]^2 at most, in tiles; threshold: a tile is kept when its coarse points come
    within threshold nats of the image's highest log p(x, z); spacing: of the grid's points.
    Raises ConfigError for a spacing that does not divide a tile, Interrupted on a signal (what was done is lost)."""
    if abs(TILE / spacing - round(TILE / spacing)) > 1e-6:
        raise ConfigError(f"the exact grid's spacing must divide {TILE}, not {spacing}")
    x = np.asarray(x, np.float32)
    began = time.perf_counter()
    theta = devices.replicate(theta)
    lows, kept, coarse_points = tiles if tiles is not None else select_tiles(net, theta, x, extent, threshold,
                                                                             devices=devices)
    total = np.full(len(x), -np.inf)
    pairs = 0  # (image, fine point) pairs evaluated
    needed = np.nonzero(kept.any(axis=0))[0]
    blocks = list(_blocks(kept, len(lows)))
    done = 0
    try:
        for done, (members, in_group) in enumerate(tqdm(blocks, desc=desc, unit="block", disable=not progress,
                                                        dynamic_ncols=True)):
            logits, row = _tile_terms(net, theta, _points(devices, lows[members], TILE, spacing))
            for ids, n in _chunks(np.nonzero(in_group.any(axis=1))[0], devices):
                values = devices.gather(parallel.wait(_log_sum(devices.split(jnp.asarray(x[ids])), logits, row,
                                                               devices.split(jnp.asarray(in_group[ids])))))
                total[ids[:n]] = np.logaddexp(total[ids[:n]], values.astype(np.float64)[:n])
                pairs += n * logits.shape[0]
    except KeyboardInterrupt:
        raise Interrupted(f"stopped during {desc} after {done} of {len(blocks)} blocks of the grid; what was "
                          "finished before it is saved (summary.json)") from None
    points = len(needed) * round(TILE / spacing) ** 2
    d = x.shape[1]
    decoder_flops = _decoder_flops(net, theta, d)
    stats = {"seconds": time.perf_counter() - began, "tiles": int(len(needed)), "points": int(points),
             "image_point_pairs": int(pairs),
             "flops": float(2 * d * (pairs + len(x) * coarse_points) + decoder_flops * (points + coarse_points))}
    return total + 2 * math.log(spacing), stats


def _decoder_flops(net, theta, data_dim):
    """FLOPs of the decoder at one z: by the formula for a one-hidden-layer MLP (2 x (2h + h D)), else XLA's own
    count of the compiled decoder (a conv decoder costs far more per point than its parameter count says)."""
    if set(theta) == {"hidden", "out"}:
        hidden = theta["hidden"]["weight"].shape[1]
        return 2 * (2 * hidden + hidden * data_dim)
    cost = jax.jit(net.decode).lower(theta, jnp.zeros((1, 2), jnp.float32)).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list | tuple) else cost
    return float((cost or {}).get("flops", 0.0))


def log_joint_tables(net, theta, x, tiles, spacing=2 * SPACING, within=THRESHOLD):
    """log p(x, z_g) of each image at the points of the tiles it keeps (tiles: select_tiles's), at
    `spacing`, for work that needs the posterior itself and not only its integral (the gap
    decomposition's q*), those within `within` nats of the image's largest: flat arrays over the
    (image, point) pairs, image by image: (values (G,), points (G, 2), image (G,)). One device: the
    decoder runs once per tile, shared by the images that keep it."""
    lows, kept, _ = tiles
    values, points, image = [], [], []
    x = np.asarray(x, np.float32)
    for members, in_group in _blocks(kept, len(lows)):
        centres = cell_centres(lows[members], TILE, spacing)  # (4, P, 2)
        logits, row = _tile_terms(net, theta, jnp.asarray(centres.reshape(-1, 2)))
        for ids, n in _chunks(np.nonzero(in_group.any(axis=1))[0], parallel.ONE):
            table = np.asarray(_log_joint(jnp.asarray(x[ids]), logits, row))[:n].reshape(n, *centres.shape[:2])
            rows, k = np.nonzero(in_group[ids[:n]])  # the padded chunk computed, its real images kept
            values.append(table[rows, k].ravel())
            points.append(centres[k].reshape(-1, 2))
            image.append(np.repeat(ids[:n][rows], centres.shape[1]))
    values, points, image = np.concatenate(values), np.concatenate(points), np.concatenate(image)
    largest = np.full(len(x), -np.inf)
    np.maximum.at(largest, image, values)
    keep = values >= largest[image] - within  # the points within `within` nats of the image's largest
    order = np.argsort(image[keep], kind="stable")
    return values[keep][order], points[keep][order], image[keep][order]


def accuracy(net, theta, x, values, spacing=SPACING, extent=None, threshold=THRESHOLD, tiles=None, progress=False,
             devices=parallel.ONE):
    """How much log p(x) moves when the spacing is halved and when the extent (None: model_extent's) and the
    threshold grow (by two tiles and 15 nats): mean and largest absolute change per image, nats.
    values: log_px's values (N,) at spacing, extent and threshold, the numbers checked."""
    extent = model_extent(net, theta) if extent is None else extent
    halved, _ = log_px(net, theta, x, spacing / 2, extent, threshold, tiles, progress, "halved spacing", devices)
    grown, _ = log_px(net, theta, x, spacing, extent + 2 * TILE, threshold + 15, None, progress, "grown extent",
                      devices)
    return {name: {"mean_abs_change": float(np.mean(np.abs(other - values))),
                   "max_abs_change": float(np.max(np.abs(other - values))),
                   "change_of_mean": float(np.mean(other) - np.mean(values))}
            for name, other in (("halved_spacing", halved), ("grown_extent", grown))}
