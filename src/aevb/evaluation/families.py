"""The posterior family's side of the gap decomposition: each ELBO by Monte Carlo in bounded memory (elbo_of_q), and
the gaps against the run's own family F where it is richer than the factorized Gaussian (family_gaps): q*_F
fitted per image by SVI from the factorized q* (aevb.evaluation.q_stars.fit_family)."""

import time

import jax
import jax.numpy as jnp
import numpy as np

from ..model import posteriors, probability
from . import bounds, q_stars

CHUNK = bounds.SAMPLE_CHUNK  # draws per step of elbo_of_q's map
GAP_SAMPLES = 1000  # z per image for the ELBOs of q* and of the encoder's q (the same z noise for both)


@jax.jit(static_argnames=("net", "num_samples"))
def elbo_of_q(key, net, theta, x, q, num_samples):
    """probability.elbo_of with the same draws (all the noise drawn at once, as it draws it: (S, n, Dz)
    is small), its log weights computed CHUNK draws at a time: memory of CHUNK images' logits per image,
    not S (S a multiple of CHUNK).
    q: a q of the network's family for each image (n, ...), as family.q(outputs) gives it."""
    q = posteriors.as_q(q)
    z, log_q_z = q.sample(key, (num_samples,))  # (S, n, Dz), (S, n)
    z, log_q_z = z.reshape(-1, CHUNK, *z.shape[1:]), log_q_z.reshape(-1, CHUNK, *log_q_z.shape[1:])  # (S/C, C, ...)
    total = jax.lax.map(lambda draws: jnp.sum(bounds.draws_log_weights(net, theta, x, q, *draws), axis=0),
                        (z, log_q_z))  # (S/C, n)
    return jnp.sum(total, axis=0) / num_samples


FAMILY_IMAGES = 100  # the first this many of the gap decomposition's images for a richer family's q*_F (SVI)


def family_gaps(net, params, x, log_px_values, q_star, fit_key, elbo_key, family=None):
    """The gaps against a family F (family; None: the network's own): approximation log p(x) - ELBO(q*_F),
    amortization ELBO(q*_F) - ELBO(encoder's q), and what F gains per image over the best factorized Gaussian,
    ELBO(q*_F) - ELBO(q*). For another family than the encoder's, the "amortization gap" is how far the encoder's q
    stays below the best member of F (what a flow fitted per image would gain on a model trained with FFG).
    q*_F per image: the SVI fit or its start (q* itself, a member of F), whichever has the higher ELBO on draws
    of their own (a key apart from the reported ELBOs', so the choice does not select on their noise).
    log_px_values: each image's exact log p(x) (n,); q_star: the best factorized Gaussian (mean, log_std) (n, Dz)
    each; fit_key: the SVI's draws; elbo_key: the reported ELBOs' draws. Returns (numbers, per-image arrays) for
    summary.json."""
    began = time.perf_counter()
    family = family or net.family
    q_star_f, better, trace = best_member(net, params, x, q_star, fit_key, jax.random.fold_in(elbo_key, 1), family)
    theta = probability.generative(net, params)
    elbo_f, elbo_ffg, elbo_encoder = (np.asarray(elbo_of_q(elbo_key, net, theta, x, q, GAP_SAMPLES), np.float64)
                                      for q in (q_star_f, q_star, net.encode(params["encoder"], x)))
    numbers = {"posterior": family.name, "images": len(x), "q_star": "svi", "steps": q_stars.FAMILY_STEPS,
               "draws": q_stars.FAMILY_SAMPLES, "fitted_better": float(np.mean(np.asarray(better))),
               "last_steps_change": float(trace[-1] - trace[-50])}
    for name, values in (("elbo_q_star", elbo_f), ("approximation_gap", log_px_values - elbo_f),
                         ("amortization_gap", elbo_f - elbo_encoder), ("gain_over_gaussian_q_star", elbo_f - elbo_ffg)):
        numbers[name], numbers[name + "_se"] = bounds.mean_and_standard_error(values)
    numbers["seconds"] = time.perf_counter() - began
    return numbers


def best_member(net, params, x, q_star, fit_key, choose_key, family=None):
    """q*_F of images x (n, D) for a family F (None: the network's own): per image the better of the SVI fit from the
    best factorized Gaussian q_star (mean, log_std) (n, Dz) each and of that start, by the ELBO on GAP_SAMPLES draws
    of choose_key (fit_key: the SVI's). Returns (q*_F, a q of F for each image; which images the fit improved (n,);
    the fit's ELBO trace (steps,))."""
    family = family or net.family
    (start, fitted), trace = q_stars.fit_family(fit_key, net, params, x, q_star, family=family)
    theta = probability.generative(net, params)
    better = (elbo_of_q(choose_key, net, theta, x, family.q(fitted), GAP_SAMPLES)
              > elbo_of_q(choose_key, net, theta, x, family.q(start), GAP_SAMPLES))  # (n,)
    return family.q(jnp.where(better[:, None], fitted, start)), better, trace


def others(spec, own):
    """The families of spec (Config.gap_families, such as "full-gaussian+coupling:4") to fit besides the factorized
    Gaussian q* and the model's own family own (those two are measured anyway)."""
    listed = (posteriors.get(name) for name in spec.split("+") if name)
    return [family for family in listed if family.name not in ("gaussian", own.name)]


def fitted(g):
    """The families fitted per image in a gap decomposition g (gap_decomposition's numbers), each (its numbers, own):
    the run's own family first where it is richer than the factorized Gaussian (own True), then gap_families'."""
    return ([(g["family"], True)] if "family" in g else []) + [(f, False) for f in g.get("other_families", [])]


def describe_families(g, side):
    """The lines of a gap decomposition g (gap_decomposition's numbers) for the run's own family and the others;
    side: "test" or "train"."""
    return [describe_family(f, side, own) for f, own in fitted(g)]


def describe_family(f, side, own=True):
    """One line of the gaps against a posterior family (family_gaps' numbers f), the run's own or (own False) another
    fitted to the same model. side: "test" or "train", the images they are of."""
    below = "amortization" if own else "the encoder's q below it"
    return (f"{side} gap against {f['posterior']}'s {'own ' if own else '(another family) '}q* on {f['images']} images "
            f"(SVI, {f['steps']} steps of {f['draws']} draws, better than its start on {f['fitted_better']:.0%}): "
            f"approximation {f['approximation_gap']:.2f} ± {f['approximation_gap_se']:.2f}, {below} "
            f"{f['amortization_gap']:.2f} ± {f['amortization_gap_se']:.2f}; its q* is "
            f"{f['gain_over_gaussian_q_star']:.2f} ± {f['gain_over_gaussian_q_star_se']:.2f} nats/image above the "
            "factorized Gaussian's")
