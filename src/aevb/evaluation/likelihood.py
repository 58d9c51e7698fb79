"""What `aevb evaluate --ais` measures: log p(x) of test images by AIS (aevb.evaluation.ais) at any
latent dimension, the bidirectional check on data simulated from the model (BDMC), and with Dz = 2
both checked against the exact log p(x) of the same images (aevb.evaluation.exact)."""

import dataclasses
import time

import numpy as np

from .. import parallel
from ..errors import ConfigError, TooBig, machine_memory
from ..model import probability
from . import bounds, exact, families, gaps, proposals
from .ais import Settings, ais_per_image

STARTS = {"defensive": "the defensive proposal around q", "encoder": "the encoder's q",
          "prior": "the prior"}
BDMC_KEY = np.array([0, 6], np.uint32)  # jax.random.PRNGKey(6): the simulated data


def settings_of(config, data_dim=None, **given):
    """The AIS Settings of a run's config (its ais_* fields and bdmc), with the given ones instead; refused
    in one line before any work where they cannot run, or (data_dim given) would not fit in memory."""
    # --ais-images N is N images' worth: BDMC simulates at most as many examples unless --bdmc asks for more.
    bdmc = min(config.bdmc, given["images"]) if "images" in given and "bdmc" not in given else config.bdmc
    settings = Settings(**{"steps": config.ais_steps, "chains": config.ais_chains, "leapfrog": config.ais_leapfrog,
                           "images": config.ais_images, "train_images": config.ais_train_images, "bdmc": bdmc,
                           **given})
    return settings if data_dim is None else check(settings, data_dim, config.latent_dim)


def plan(settings):
    """One line saying what --ais will run, before it runs: the images, the simulated examples, the curve,
    and the gradient evaluations of log p(x, z) they cost (each AIS distribution L per chain)."""
    n = min(CURVE_IMAGES, settings.images)
    steps = [t for t in CURVE_STEPS if t < settings.steps]
    per_chain = settings.steps * settings.leapfrog
    work = settings.chains * per_chain * (settings.images + settings.train_images + 2 * settings.bdmc)
    work += settings.chains * settings.leapfrog * sum(steps) * (n + 2 * min(CURVE_IMAGES, settings.bdmc))
    bdmc = f"BDMC on {settings.bdmc} simulated examples (forward and reverse)" if settings.bdmc else "no BDMC"
    train = f" and {settings.train_images} training images" if settings.train_images else ""
    return (f"AIS will run: {settings.images} test images{train} (T={settings.steps}, C={settings.chains}, "
            f"L={settings.leapfrog}); {bdmc}; the curve against T on {n} images with IWAE up to "
            f"K={CURVE_KS[-1]}: about " + f"{work:,}".replace(",", " ") + " gradient evaluations of log p(x, z) in all")


def memory_bytes(settings, data_dim, latent_dim):
    """{part: bytes} estimated before AIS runs: one compiled call (bounds.IMAGE_CHUNK images x C chains, the
    decoder's logits and their gradient at a leapfrog state, each twice: 4 copies of (chunk, C, D) float32),
    and BDMC's simulated examples at once (z, logits and images: 3 copies of (n, D) float32)."""
    per_call = 4 * 4 * bounds.IMAGE_CHUNK * max(settings.chains, settings.pilot_chains) * (data_dim + latent_dim)
    return {"one AIS call": per_call, "BDMC's simulated examples": 3 * 4 * settings.bdmc * (data_dim + latent_dim)}


def check(settings, data_dim, latent_dim):
    """settings, refused in one line if AIS cannot run them: no images, or an estimated memory (memory_bytes)
    over this machine's. Raises ConfigError or TooBig."""
    if settings.images < 1:
        raise ConfigError("AIS needs at least one test image (--ais-images)")
    have = machine_memory()
    for part, need in memory_bytes(settings, data_dim, latent_dim).items():
        if need > 0.8 * have:
            raise TooBig(f"{part} would need about {need / 2**30:.1f} GiB; this machine has {have / 2**30:.1f} GiB: "
                         f"choose fewer {'--ais-chains' if part == 'one AIS call' else '--bdmc examples'}")
    return settings


def simulate(net, theta, latent_dim, n, key=BDMC_KEY):
    """n examples from the model itself: (z (n, Dz) from the prior, binary x (n, D) from p(x|z))."""
    z, _, x = probability.sample(key, net, theta, latent_dim, n)
    return np.asarray(z), np.asarray(x)


CURVE_STEPS = (10, 30, 100, 300, 1000, 3000)  # T of the curve, those below the run's own T and that T
CURVE_IMAGES = 100  # the curve's first test images and simulated examples
CURVE_KS = (1, 10, 100, 1000, 5000)  # K of the IWAE bounds beside it, on the same images


def evaluate(net, params, x_test, latent_dim, settings, progress=True, devices=parallel.ONE, curve=True, others="",
             x_train=None):
    """(numbers for summary.json, per-image arrays): AIS of the first settings.images test images (and of the first
    settings.train_images of x_train under "train", where given) and, with settings.bdmc, forward and reverse AIS of
    that many examples simulated from the model (BDMC); with Dz = 2 each checked against the exact log p(x) of the
    same images, else with where the ELBO's gap comes from on them (AIS as log p(x)). settings:
    aevb.evaluation.ais.Settings or a dict of its fields. The numbers: everything under "ais", its
    headline beside the other bounds as test_log_px_ais (and bdmc_gap), each with its _se, and with curve
    the estimates against T beside the IWAE bounds against K (ais_vs_steps; see steps_curve). others: the gap
    decomposition's other families (gaps.gap_decomposition)."""
    settings = check(Settings(**settings) if isinstance(settings, dict) else settings, x_test.shape[1], latent_dim)
    mean_se = bounds.mean_and_standard_error
    x = x_test[: settings.images]
    theta = devices.replicate(probability.generative(net, params))
    measured, out, truth = _measured(net, params, theta, x, latent_dim, settings, "test", progress, devices, others)
    # The settings, less bdmc: "bdmc" names BDMC's result where it ran (its examples among them), so a
    # result's parts are the keys present, whatever ran (describe and the report read them so).
    r = {**{k: v for k, v in dataclasses.asdict(settings).items() if k != "bdmc"}, **measured}
    per_image = {"test_ais": out["log_px"], "test_ais_se": out["log_px_se"]}
    if settings.train_images and x_train is not None:
        r["train"], train, _ = _measured(net, params, theta, x_train[: settings.train_images], latent_dim, settings,
                                         "train", progress, devices, others)
        per_image.update(train_ais=train["log_px"], train_ais_se=train["log_px_se"])
    simulated = None
    if settings.bdmc:
        began = time.perf_counter()
        z, simulated = simulate(net, probability.generative(net, params), latent_dim, settings.bdmc)
        both = ais_per_image(net, params, simulated, settings, latent_dim, z_true=z, progress=progress,
                             desc="BDMC", devices=devices)
        b = {"examples": settings.bdmc, "seconds": time.perf_counter() - began}
        for name, values in (("forward", both["log_px"]), ("reverse", both["upper"]),
                             ("gap", both["upper"] - both["log_px"])):
            b[name], b[name + "_se"] = mean_se(values)
        simulated_truth = exact.log_px(net, theta, simulated, progress=progress, desc="exact log p(x) of BDMC's "
                                       "examples", devices=devices)[0] if latent_dim == 2 else None
        if simulated_truth is not None:
            b["exact"], b["exact_se"] = mean_se(simulated_truth)
        r["bdmc"], simulated = b, (simulated, z, both, simulated_truth)
    headline = {"ais": r, "test_log_px_ais": r["log_px"], "test_log_px_ais_se": r["log_px_se"]}
    if settings.bdmc:
        headline.update(bdmc_gap=r["bdmc"]["gap"], bdmc_gap_se=r["bdmc"]["gap_se"])
    if curve:
        headline["ais_vs_steps"] = steps_curve(net, params, x, out, truth, simulated, settings, latent_dim, progress,
                                               devices)
    return headline, per_image


def _measured(net, params, theta, x, latent_dim, settings, side, progress, devices, others):
    """AIS of images x (side: "test" or "train"): (numbers, AIS's per-image outputs, the exact log p(x) (N,) or None).
    The numbers: log p(x) ± SE, the chains' SE, the acceptance and the time; with Dz = 2 the difference from the
    exact value of the same images, else where the ELBO's gap comes from on them, AIS as log p(x)."""
    mean_se = bounds.mean_and_standard_error
    began = time.perf_counter()
    out = ais_per_image(net, params, x, settings, latent_dim, progress=progress, desc=f"AIS, {side}", devices=devices)
    seconds = time.perf_counter() - began
    r = {"images": len(x), "seconds": seconds,
         "gradient_evaluations_per_second": settings.gradient_evaluations() * len(x) / seconds,
         "acceptance": float(np.mean(out["acceptance"])),
         "chains_se": float(np.sqrt(np.sum(np.asarray(out["log_px_se"], np.float64) ** 2)) / len(x))}
    r["log_px"], r["log_px_se"] = mean_se(out["log_px"])
    # The exact value beside it (Dz = 2), with its own bar: on a conv decoder minutes for a few images (measured:
    # 200 s for 2 test images of a 1-epoch conv model, 208 400 grid points, on a 2-core CPU).
    truth = exact.log_px(net, theta, x, progress=progress, desc=f"exact log p(x) of the AIS {side} images",
                         devices=devices)[0] if latent_dim == 2 else None
    if truth is not None:
        difference = out["log_px"] - truth
        r["minus_exact"], r["minus_exact_se"] = mean_se(difference)
        r["within_half_nat"], r["largest_abs_difference"] = float(np.mean(np.abs(difference) < 0.5)), float(
            np.max(np.abs(difference)))
    else:  # where the ELBO's gap comes from, with AIS as log p(x) (with Dz = 2 the exact one has it)
        n = min(gaps.GAP_IMAGES, len(x))
        r["gap_decomposition"] = gaps.gap_decomposition(net, devices.local(params), x[:n],
                                                        np.asarray(out["log_px"][:n], np.float64), gaps.KEY,
                                                        others=others)
    return r, out, truth


def _compared(r, side):
    """The lines of what AIS of one side's images (side: "test" or "train") was compared with: the exact value (Dz =
    2) or the gap decomposition it is log p(x) of, where the result r has them."""
    lines, images = [], "test images" if side == "test" else "training images"
    if "minus_exact" in r:
        lines.append(f"AIS minus the exact log p(x) of the same images {r['minus_exact']:.3f} ± "
                     f"{r['minus_exact_se']:.3f} nats/image; {r['within_half_nat']:.1%} within 0.5 nats, the "
                     f"largest {r['largest_abs_difference']:.2f}")
    if "gap_decomposition" in r:
        g = r["gap_decomposition"]
        lines.append(f"where the ELBO's gap comes from, AIS as log p(x), first {g['images']} {images}: "
                     f"approximation {g['approximation_gap']:.2f} ± {g['approximation_gap_se']:.2f}, amortization "
                     f"{g['amortization_gap']:.2f} ± {g['amortization_gap_se']:.2f} nats/image")
        lines.extend(families.describe_families(g, side))
    return lines


def _paired(values, reference):
    """(mean of values, standard error of the per-image difference to reference): with the images' own
    spread cancelled, the error bar says how well the curve's steps are measured."""
    values = np.asarray(values, np.float64)
    return float(np.mean(values)), bounds.mean_and_standard_error(values - reference)[1]


def steps_curve(net, params, x, out, truth, simulated, settings, latent_dim, progress, devices):
    """AIS against T (CURVE_STEPS below settings.steps, and settings.steps from out) on the first
    CURVE_IMAGES test images, beside the IWAE bounds against K (CURVE_KS, q and defensive) of the same
    images, and BDMC's forward and reverse AIS against T on as many simulated examples. Error bars are
    paired: the SE of each image's difference to the reference (its exact log p(x) with Dz = 2, else its
    AIS at the largest T; for BDMC the midpoint of the two bounds there).
    truth: the exact log p(x) of x's images (N,) with Dz = 2, else None; out: AIS's result at settings.steps;
    simulated: BDMC's examples drawn from the model."""
    n, steps = min(CURVE_IMAGES, len(x)), tuple(t for t in CURVE_STEPS if t < settings.steps) + (settings.steps,)

    def at(t, images, z_true=None, desc="AIS"):
        return ais_per_image(net, params, images, dataclasses.replace(settings, steps=t), latent_dim, z_true,
                             progress=progress, desc=f"{desc} T={t}", devices=devices)

    estimates = [at(t, x[:n])["log_px"] for t in steps[:-1]] + [out["log_px"][:n]]
    reference = truth[:n] if truth is not None else np.asarray(out["log_px"][:n], np.float64)
    c = {"images": n, "steps": list(steps), "k": list(CURVE_KS), "reference": "exact" if truth is not None else "ais",
         "defensive_proposal": proposals.describe_defensive(net.family)}
    c["ais"], c["ais_se"] = map(list, zip(*(_paired(v, reference) for v in estimates), strict=True))
    for name, defensive in (("iwae", False), ("defensive", True)):
        values = gaps.iwae_prefixes_per_image(net, params, x[:n], CURVE_KS, progress=progress, defensive=defensive,
                                              devices=devices)  # (n, len(K))
        c[name], c[name + "_se"] = map(list, zip(*(_paired(v, reference) for v in values.T), strict=True))
    if truth is not None:
        c["exact"] = float(np.mean(reference))
    if simulated is not None:
        images, z, both, simulated_truth = simulated
        m = min(CURVE_IMAGES, len(images))
        runs = [at(t, images[:m], z[:m], "BDMC") for t in steps[:-1]] + [{k: v[:m] for k, v in both.items()}]
        middle = (simulated_truth[:m] if simulated_truth is not None else
                  (np.asarray(both["log_px"][:m], np.float64) + np.asarray(both["upper"][:m], np.float64)) / 2)
        b = {"examples": m}
        for name, key in (("forward", "log_px"), ("reverse", "upper")):
            b[name], b[name + "_se"] = map(list, zip(*(_paired(run[key], middle) for run in runs), strict=True))
        if simulated_truth is not None:
            b["exact"] = float(np.mean(middle))
        c["bdmc"] = b
    return c


def describe(r):
    """What `aevb evaluate --ais` prints (r: the summary's "ais"): a line for each part the result has (AIS
    always; the comparison with the exact value, the gap decomposition and BDMC where they were computed)."""
    lines = [f"test log p(x) by AIS {r['log_px']:.2f} ± {r['log_px_se']:.2f} nats/image on the first {r['images']} "
             f"test images (± SE over images; the chains' own Monte Carlo SE {r['chains_se']:.3f}); T={r['steps']} "
             f"{r['schedule']} from {STARTS[r['start']]}, {r['chains']} chains, "
             f"{r['leapfrog']} leapfrog steps, acceptance {r['acceptance']:.2f}, {r['seconds']:.0f} s"]
    lines += _compared(r, "test")
    if "train" in r:  # the training images' (ais_train_images)
        t = r["train"]
        lines.append(f"train log p(x) by AIS {t['log_px']:.2f} ± {t['log_px_se']:.2f} nats/image on the first "
                     f"{t['images']} training images (the chains' own Monte Carlo SE {t['chains_se']:.3f}), "
                     f"acceptance {t['acceptance']:.2f}, {t['seconds']:.0f} s")
        lines += _compared(t, "train")
    if isinstance(r.get("bdmc"), dict):  # summaries written before 12-06 held the setting's count there too
        b = r["bdmc"]
        verdict = "below 1 nat: these settings are enough for this model" if b["gap"] < 1 else (
            "1 nat or more: use more distributions (--ais-steps) for this model")
        lines.append(f"BDMC on {b['examples']} examples simulated from the model: forward AIS {b['forward']:.2f}, "
                     f"reverse {b['reverse']:.2f}"
                     + (f", exact {b['exact']:.2f}" if "exact" in b else "")
                     + f"; gap {b['gap']:.2f} ± {b['gap_se']:.2f} nats/example, {verdict}")
    return "\n".join(lines)
