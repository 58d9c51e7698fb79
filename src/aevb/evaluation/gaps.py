"""Everything `aevb evaluate --exact` measures around the exact log p(x) (Dz = 2): its accuracy check,
the bounds' gaps to it, the bounds against K, and where the ELBO's gap comes from (Cremer, Li &
Duvenaud 2018: an approximation gap and an amortization gap).
"""

import time

import jax
import jax.numpy as jnp
import numpy as np

from .. import parallel
from ..errors import ConfigError
from ..model import posteriors, probability
from . import bounds, exact, families, proposals, q_stars

CHUNK = bounds.SAMPLE_CHUNK  # the IWAE bound's draws per scan step


def check_prefixes(ks, sample_chunk=CHUNK):
    """ks for iwae_prefixes: ascending, each below sample_chunk or a multiple of it. Raises ValueError otherwise."""
    if list(ks) != sorted(set(ks)) or any(k < 1 or (k > sample_chunk and k % sample_chunk) for k in ks):
        raise ValueError(f"K of the prefixes must ascend and be under {sample_chunk} or a multiple of it: {ks}")


def continues(ks, k):
    """Whether iwae_prefixes at ks can continue from a bound at K = k (its `known`)."""
    return k in ks and k % CHUNK == 0 and not any(CHUNK < other < k for other in ks)


@jax.jit(static_argnames=("net", "ks", "defensive", "known_k"))
def iwae_prefixes(net, params, x, key, ks, defensive=False, known=None, known_k=0):
    """The bound of iwae_chunk for every K in ks from one set of max(ks) draws per image, K = k the
    bound of the first k of them (as Burda et al. 2016 evaluate): (B, len(ks)). The draws, and where
    k is a multiple of CHUNK the numbers bit for bit, are those of iwae_chunk with K = k, so
    the bounds against K share their draws with the IWAE bound of the same images (check_prefixes).
    known (B,): iwae_chunk's bound at K = known_k (a multiple of CHUNK in ks; no multiple of CHUNK
    in ks between CHUNK and it), already computed: the draws past chunk 0 and up to known_k are not
    drawn again, the later ones continue its log-sum-exp (the same draws; rounding moves those K).
    defensive: the defensive mixture as the proposal (iwae_per_image)."""
    q = net.encode(params["encoder"], x)  # (B, Dz) each

    def body(carry, chunk_index):
        log_w = bounds.proposal_log_weights(net, params, x, q, jax.random.fold_in(key, chunk_index), CHUNK,
                                            defensive)
        carry = bounds.add_to_log_sum_exp(carry, log_w)
        return carry, carry[0] + jnp.log(carry[1])  # the log-sum-exp after each chunk (B,)

    empty = bounds.empty_log_sum_exp(q[0].shape[:1])
    first = bounds.proposal_log_weights(net, params, x, q, jax.random.fold_in(key, 0), CHUNK, defensive)  # chunk 0
    carry = bounds.add_to_log_sum_exp(empty, first)  # chunk 0 outside the scan: its draws also give the K below CHUNK
    after_first = carry[0] + jnp.log(carry[1])  # (B,)
    start = 1 if known is None else known_k // CHUNK  # the scan's first chunk
    if known is not None:  # the log-sum-exp of the first known_k draws
        carry = (known + jnp.log(known_k), jnp.ones_like(known))
    _, later = jax.lax.scan(body, carry, jnp.arange(start, max(max(ks) // CHUNK, start)))  # (chunks - start, B)
    values = []
    for k in ks:
        if k == known_k:
            values.append(known)
        elif k < CHUNK:  # fewer than a chunk: the first k draws of chunk 0
            running_max, running_sum = bounds.add_to_log_sum_exp(empty, first[:k])
            values.append(running_max + jnp.log(running_sum) - jnp.log(k))
        else:
            values.append((after_first if k == CHUNK else later[k // CHUNK - start - 1]) - jnp.log(k))
    return jnp.stack(values, -1)


@jax.jit(static_argnames=("net", "ks", "defensive", "known_k"))
def _iwae_prefix_chunks(net, params, x, keys, ks, defensive, known=None, known_k=0):
    """iwae_prefixes of each chunk x (C, B, D) with its key (C,) (and its known (C, B)): (C, B, len(ks))."""
    return jax.vmap(lambda xc, key, kc: iwae_prefixes(net, params, xc, key, ks, defensive, kc, known_k))(x, keys, known)


def iwae_prefixes_per_image(net, params, x, ks, key=bounds.EVAL_KEY, progress=False, defensive=False,
                            devices=parallel.ONE, known=None):
    """iwae_prefixes over x's images (chunked, keyed and split over devices as iwae_per_image, so the
    bound at K = k equals iwae_per_image's at k where k is a multiple of CHUNK): (N, len(ks)).
    known: (K, iwae_per_image's bounds of x at K with the same key (N,)), whose draws are not drawn
    again (iwae_prefixes).
    defensive: the defensive mixture as the proposal (iwae_per_image).
    Raises ValueError where known cannot be continued."""
    check_prefixes(ks)
    known_k, values = known or (0, None)
    if known and not continues(ks, known_k):
        raise ValueError(f"the known bound's K must be a multiple of {CHUNK} in {ks}, none between {CHUNK} and it")
    params, ks = devices.replicate(params), tuple(ks)
    desc = f"IWAE K={','.join(map(str, ks))}" + " defensive" * defensive
    return bounds.by_chunks(lambda block, keys, *given: _iwae_prefix_chunks(net, params, block, keys, ks, defensive,
                                                                            *given, known_k=known_k),
                            x, key, devices.count, devices, progress, desc, () if known is None else (values,))


# ---- everything `aevb evaluate --exact` measures --------------------------------------------------

KEY = np.array([0, 3], np.uint32)  # jax.random.PRNGKey(3), fixed: the SVI fits and the gap decomposition's ELBOs
BOUND_KS = (1, 10, 100, 1000, 5000)  # K of the bounds compared with the exact value
BOUND_IMAGES = 300  # the first this many test images (K = 5000 on all 10000 would take minutes)
GAP_IMAGES = 500  # the first this many test and training images for the gap decomposition
GAP_SAMPLES = families.GAP_SAMPLES  # z per image for the ELBOs of q* and of the encoder's q
CHECK_IMAGES = 2000  # the first this many test images for the accuracy check (halving the spacing: 4x the work)


def check(latent_dim):
    """Refuses --exact where there is no 2-D grid. Raises ConfigError unless latent_dim is 2."""
    if latent_dim != 2:
        raise ConfigError(f"--exact integrates over a 2-D latent space on a grid; this run has Dz = {latent_dim} "
                          "(use --ais, or the defensive IWAE bound)")


def gap_decomposition(net, params, x, log_px_values, key, tiles=None, others=""):
    """log p(x) - ELBO(encoder's q) = approximation gap [log p(x) - ELBO(q*)] + amortization gap
    [ELBO(q*) - ELBO(encoder's q)], per image (Cremer, Li & Duvenaud 2018), nats. q*: fitted on the
    exact evaluation's grid where tiles (exact.select_tiles of x) are given (Dz = 2), else by SVI;
    both ELBOs by Monte Carlo with the same GAP_SAMPLES draws of noise.
    log_px_values: each image's exact log p(x) (N,), from exact.log_px. others: families also fitted per image
    (Config.gap_families, such as "full-gaussian+coupling:4"), each with family_gaps' numbers in "other_families"."""
    began = time.perf_counter()
    fit_key, elbo_key = jax.random.split(key)
    if tiles is None:
        q_star, how = q_stars.fit_by_svi(fit_key, net, params, jnp.asarray(x)), {"q_star": "svi"}
    else:
        q_star, how = q_stars.fit_on_grid(net, params, x, tiles)
    theta = probability.generative(net, params)
    elbo_star = np.asarray(families.elbo_of_q(elbo_key, net, theta, jnp.asarray(x), q_star, GAP_SAMPLES), np.float64)
    elbo_encoder = np.asarray(families.elbo_of_q(elbo_key, net, theta, jnp.asarray(x), net.encode(params["encoder"], x),
                                       GAP_SAMPLES), np.float64)
    numbers = {"images": len(x), **how, "seconds": time.perf_counter() - began}
    for name, values in (("log_px", log_px_values), ("elbo_q_star", elbo_star), ("elbo_encoder", elbo_encoder),
                         ("approximation_gap", log_px_values - elbo_star),
                         ("amortization_gap", elbo_star - elbo_encoder)):
        numbers[name], numbers[name + "_se"] = bounds.mean_and_standard_error(values)
    dz, n = q_star[0].shape[-1], min(families.FAMILY_IMAGES, len(x))
    first = (net, params, jnp.asarray(x[:n]), log_px_values[:n], jax.tree.map(lambda a: a[:n], q_star), fit_key,
             elbo_key)
    if net.family.outputs(dz) > 2 * dz:  # a family richer than the factorized Gaussian: its own q*_F as well
        numbers["family"] = families.family_gaps(*first)
    if fitted := families.others(others, net.family):
        numbers["other_families"] = [families.family_gaps(*first, family=family) for family in fitted]
    return numbers


def evaluate(net, params, x_train, x_test, per_image, iwae_k, key, progress=True, extras=True, devices=parallel.ONE,
             others=""):
    """(the numbers summary.json holds, per-image arrays): exact log p(x) of every training and test
    image and its gaps to the bounds; with extras, also the grid's accuracy check (the spacing halved),
    the bounds against it for several K and the gap decomposition (most of the time; sweeps and quick
    evaluations leave them out).
    per_image: aevb.evaluation.bounds.evaluate's per-image ELBOs and IWAE bounds of the same images. devices: the
    log p(x) and the bounds split images over them; the gap decomposition runs whole on each process.
    iwae_k: K of per_image's IWAE bounds (the bounds against K stop there); others: gap_decomposition's."""
    theta, began = devices.replicate(probability.generative(net, params)), time.perf_counter()
    core = exact.select_tiles(net, theta, x_test, grow=False, devices=devices)  # the accuracy check's, below
    tiles = exact.grown(core)
    test, stats = exact.log_px(net, theta, x_test, tiles=tiles, progress=progress, desc="exact log p(x), test",
                         devices=devices)
    train_tiles = exact.select_tiles(net, theta, x_train, devices=devices)
    train, _ = exact.log_px(net, theta, x_train, tiles=train_tiles, progress=progress, desc="exact log p(x), train",
                            devices=devices)
    grid = {"spacing": exact.SPACING, "extent": exact.model_extent(net, theta), "threshold_nats": exact.THRESHOLD,
            "tile": exact.TILE, "prior_reach": float(net.prior.extent(net, theta))}
    results = {"log_px_grid": grid, "log_px_seconds": stats["seconds"], "log_px_gflop": stats["flops"] / 1e9}
    if extras:
        check = x_test[:CHECK_IMAGES]
        # The spacing halved on the tiles within the threshold, without the ring grown around them (under e^-30
        # of an image's mass; 2.5x fewer tiles per image): 1.4x faster, the same largest change to 4 digits.
        check_tiles = (core[0], core[1][: len(check)], core[2])
        results["log_px_accuracy"] = {"images": len(check), **exact.accuracy(
            net, theta, check, test[: len(check)], tiles=check_tiles, progress=progress, devices=devices)}
    mean_se = bounds.mean_and_standard_error
    results["test_log_px"], results["test_log_px_se"] = mean_se(test)
    results["train_log_px"], results["train_log_px_se"] = mean_se(train)
    for side, values in (("test", test), ("train", train)):
        results[f"{side}_gap_elbo"], results[f"{side}_gap_elbo_se"] = mean_se(values - per_image[f"{side}_elbo"])
    gap = test - per_image["test_iwae"]
    results["test_gap_iwae"] = {"k": iwae_k, **dict(zip(("mean", "se"), mean_se(gap), strict=True)),
                                "fraction_over_10_nats": float(np.mean(gap > 10)),
                                "share_of_total_from_those": float(gap[gap > 10].sum() / gap.sum())}
    if not extras:
        results["exact_evaluation_seconds"] = time.perf_counter() - began
        return results, {"test_log_px": test, "train_log_px": train}
    subset = x_test[:BOUND_IMAGES]
    against_k = {"images": len(subset), "k": list(BOUND_KS), "defensive_proposal": proposals.describe_defensive(
        net.family)}
    for name, defensive in (("iwae", False), ("defensive", True)):
        # Each K the first K of one set of max(K) draws per image (Burda et al. 2016), as iwae_per_image draws
        # them: the plain bound's first iwae_k are the IWAE bound's own, continued, not drawn again.
        shared = not defensive and continues(BOUND_KS, iwae_k)
        known = (iwae_k, per_image["test_iwae"][: len(subset)]) if shared else None
        per_k = iwae_prefixes_per_image(net, params, subset, BOUND_KS, progress=progress, defensive=defensive,
                                        devices=devices, known=known).T  # (len(BOUND_KS), images)
        against_k[name], against_k[name + "_se"] = (list(v) for v in zip(*map(mean_se, per_k), strict=True))
        against_k[name + "_gap"], against_k[name + "_gap_se"] = (
            list(v) for v in zip(*(mean_se(test[: len(subset)] - values) for values in per_k), strict=True))
    against_k["exact"], against_k["exact_se"] = mean_se(test[: len(subset)])
    results["bounds_vs_k"] = against_k
    local = devices.local(params)  # this process's own copy: the same fits on every process
    results["gap_decomposition"] = {  # q* on the grid, from the tiles of the same images
        side: gap_decomposition(net, local, x[:GAP_IMAGES], values[:GAP_IMAGES], jax.random.fold_in(key, index),
                                (found[0], found[1][:GAP_IMAGES], found[2]), others)
        for index, (side, x, values, found) in enumerate((("test", x_test, test, tiles),
                                                          ("train", x_train, train, train_tiles)))}
    results["exact_evaluation_seconds"] = time.perf_counter() - began
    return results, {"test_log_px": test, "train_log_px": train}


def describe(r):
    """What `aevb evaluate --exact` prints of its numbers (r: the summary's keys)."""
    lines, check = [], r.get("log_px_accuracy")
    lines.append(f"test log p(x)  {r['test_log_px']:.2f} ± {r['test_log_px_se']:.2f} nats/image, exact (quadrature on "
                 f"a grid of spacing {r['log_px_grid']['spacing']}; " + (
                     f"halving it moves log p(x) by {check['halved_spacing']['max_abs_change']:.1e} nats at most, "
                     f"growing the extent by {check['grown_extent']['max_abs_change']:.1e})" if check else
                     "its accuracy not checked: a quick evaluation)"))
    lines.append(f"train log p(x) {r['train_log_px']:.2f} ± {r['train_log_px_se']:.2f} nats/image")
    grid = r["log_px_grid"]
    if grid.get("prior_reach", 0.0) > grid["extent"]:  # a learned prior wider than the widest box
        lines.append(f"the prior reaches |z| = {grid['prior_reach']:.1f} along an axis, past the grid's box |z| <= "
                     f"{grid['extent']:g}: the exact values leave out what lies beyond it (a lower bound there)")
    gap = r["test_gap_iwae"]
    lines.append(f"IWAE K={gap['k']} is {gap['mean']:.2f} ± {gap['se']:.2f} nats/image below it; "
                 f"{gap['fraction_over_10_nats']:.0%} of the images are over 10 nats below and hold "
                 f"{gap['share_of_total_from_those']:.0%} of that gap")
    if "bounds_vs_k" not in r:  # evaluated without the extras (a sweep, or quick)
        return "\n".join(lines)
    b = r["bounds_vs_k"]
    lines.append(f"on {b['images']} test images, K={b['k'][-1]}: IWAE {b['iwae_gap'][-1]:.2f} ± "
                 f"{b['iwae_gap_se'][-1]:.2f} nats below log p(x), the defensive IWAE {b['defensive_gap'][-1]:.2f} ± "
                 f"{b['defensive_gap_se'][-1]:.2f}")
    for side in ("test", "train"):
        g = r["gap_decomposition"][side]
        lines.append(f"{side} gap on {g['images']} images: approximation {g['approximation_gap']:.2f} ± "
                     f"{g['approximation_gap_se']:.2f}, amortization {g['amortization_gap']:.2f} ± "
                     f"{g['amortization_gap_se']:.2f} nats/image (q*: the best factorized Gaussian)")
        lines.extend(families.describe_families(g, side))
    return "\n".join(lines)
