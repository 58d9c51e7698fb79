"""What `aevb evaluate --ais` measures: log p(x) of test images by AIS (aevb.evaluation.ais) at any
latent dimension, the bidirectional check on data simulated from the model (BDMC), and with Dz = 2
both checked against the exact log p(x) of the same images (aevb.evaluation.exact)."""

import dataclasses
import time

import numpy as np

from .. import parallel
from ..model import probability
from . import bounds, exact
from .ais import Settings, ais_per_image

STARTS = {"defensive": "the defensive mixture (1/2 q + 1/4 wide q + 1/4 prior)", "encoder": "the encoder's q",
          "prior": "the prior"}
BDMC_KEY = np.array([0, 6], np.uint32)  # jax.random.PRNGKey(6): the simulated data


def simulate(net, theta, latent_dim, n, key=BDMC_KEY):
    """n examples from the model itself: (z (n, Dz) from the prior, binary x (n, D) from p(x|z))."""
    z, _, x = probability.sample(key, net, theta, latent_dim, n)
    return np.asarray(z), np.asarray(x)


def evaluate(net, params, x_test, latent_dim, settings, progress=True, devices=parallel.ONE):
    """(the numbers summary.json holds under "ais", per-image arrays): AIS of the first settings.images test
    images and, with settings.bdmc, forward and reverse AIS of that many examples simulated from the model
    (BDMC); with Dz = 2 both checked against the exact log p(x) of the same images. settings:
    aevb.evaluation.ais.Settings or a dict of its fields."""
    settings = Settings(**settings) if isinstance(settings, dict) else settings
    mean_se = bounds.mean_and_standard_error
    x = x_test[: settings.images]
    began = time.perf_counter()
    out = ais_per_image(net, params, x, settings, latent_dim, progress=progress, desc="AIS, test", devices=devices)
    seconds = time.perf_counter() - began
    r = {**dataclasses.asdict(settings), "images": len(x), "seconds": seconds,
         "gradient_evaluations_per_second": settings.gradient_evaluations() * len(x) / seconds,
         "acceptance": float(np.mean(out["acceptance"])),
         "chains_se": float(np.sqrt(np.sum(np.asarray(out["log_px_se"], np.float64) ** 2)) / len(x))}
    r["log_px"], r["log_px_se"] = mean_se(out["log_px"])
    per_image = {"test_ais": out["log_px"], "test_ais_se": out["log_px_se"]}
    if latent_dim == 2:
        difference = out["log_px"] - exact.log_px(net, devices.replicate(params["decoder"]), x, devices=devices)[0]
        r["minus_exact"], r["minus_exact_se"] = mean_se(difference)
        r["within_half_nat"], r["largest_abs_difference"] = float(np.mean(np.abs(difference) < 0.5)), float(
            np.max(np.abs(difference)))
    if settings.bdmc:
        began = time.perf_counter()
        z, simulated = simulate(net, params["decoder"], latent_dim, settings.bdmc)
        both = ais_per_image(net, params, simulated, settings, latent_dim, z_true=z, progress=progress,
                             desc="BDMC", devices=devices)
        b = {"examples": settings.bdmc, "seconds": time.perf_counter() - began}
        for name, values in (("forward", both["log_px"]), ("reverse", both["upper"]),
                             ("gap", both["upper"] - both["log_px"])):
            b[name], b[name + "_se"] = mean_se(values)
        if latent_dim == 2:
            b["exact"], b["exact_se"] = mean_se(exact.log_px(net, devices.replicate(params["decoder"]), simulated,
                                                             devices=devices)[0])
        r["bdmc"] = b
    return r, per_image


def describe(r):
    """What `aevb evaluate --ais` prints (r: the summary's "ais")."""
    lines = [f"test log p(x) by AIS {r['log_px']:.2f} ± {r['log_px_se']:.2f} nats/image on the first {r['images']} "
             f"test images (± SE over images; the chains' own Monte Carlo SE {r['chains_se']:.3f}); T={r['steps']} "
             f"{r['schedule']} from {STARTS[r['start']]}, {r['chains']} chains, "
             f"{r['leapfrog']} leapfrog steps, acceptance {r['acceptance']:.2f}, {r['seconds']:.0f} s"]
    if "minus_exact" in r:
        lines.append(f"AIS minus the exact log p(x) of the same images {r['minus_exact']:.3f} ± "
                     f"{r['minus_exact_se']:.3f} nats/image; {r['within_half_nat']:.1%} within 0.5 nats, the "
                     f"largest {r['largest_abs_difference']:.2f}")
    if "bdmc" in r:
        b = r["bdmc"]
        verdict = "below 1 nat: these settings are enough for this model" if b["gap"] < 1 else (
            "1 nat or more: use more distributions (--ais-steps) for this model")
        lines.append(f"BDMC on {b['examples']} examples simulated from the model: forward AIS {b['forward']:.2f}, "
                     f"reverse {b['reverse']:.2f}"
                     + (f", exact {b['exact']:.2f}" if "exact" in b else "")
                     + f"; gap {b['gap']:.2f} ± {b['gap_se']:.2f} nats/example, {verdict}")
    return "\n".join(lines)
