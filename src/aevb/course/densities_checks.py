"""The autograder's checks of questions 1 and 2's densities and networks: log_prior, decoder,
log_likelihood, joint_log_density, encoder, log_q (conventions: aevb.course.grading)."""

import numpy as np

from ..model import densities, probability
from .diagnoses import NET, Wrong, call, close, compare, inputs, numbers, random_params, structure, sum_variants

# ---- question 1 ---------------------------------------------------------------------------------


def check_log_prior(log_prior):
    """Checks the student's log_prior(z) (B, Dz) -> (B,) against aevb's on three shapes; raises Wrong naming the
    mistake."""
    for seed, (batch, latent_dim) in enumerate([(1, 2), (5, 2), (4, 7)]):
        z, _ = inputs(seed, batch, latent_dim)
        want = np.asarray(probability.log_prior(z), np.float64)
        per_element = np.asarray(-0.5 * densities.LOG_2PI - 0.5 * z**2, np.float64)
        got = call("log_prior", log_prior, z)
        compare("log_prior", got, want, {
            **sum_variants(per_element, "z"),
            "it is missing the normalizing constant -Dz/2 log(2 pi)": per_element.sum(-1) + 0.5 * latent_dim
            * densities.LOG_2PI,
            "it returns the density, not its log": np.exp(want)}, f"z of shape {z.shape}")
    structure("log_prior", log_prior, lambda b: (inputs(0, b)[0],))


def check_decoder(decoder):
    """Checks decoder(theta, z) -> logits (B, D) against aevb's network; raises Wrong naming the mistake."""
    for seed, (batch, latent_dim, data_dim) in enumerate([(3, 2, 784), (4, 3, 20)]):
        params = random_params(seed, data_dim, latent_dim)
        z, _ = inputs(seed, batch, latent_dim, data_dim)
        want = np.asarray(NET.decode(params["decoder"], z), np.float64)
        got = call("decoder", decoder, params["decoder"], z)
        compare("decoder", got, want, {
            "it returns Bernoulli means (the sigmoid of the logits); return the logits themselves, the "
            "log-likelihood needs them": 1.0 / (1.0 + np.exp(-want)),
            "it applies tanh to the output layer too: only the hidden layer has tanh units": np.tanh(want)},
            f"z of shape {z.shape}")
    params = random_params(0)
    structure("decoder", decoder, lambda b: (params["decoder"], inputs(0, b)[0]))


def log_likelihood_cases():
    """Yields (params, z, x) of three shapes, the cases log_likelihood and the joint are checked on."""
    for seed, (batch, latent_dim, data_dim) in enumerate([(1, 2, 784), (5, 2, 784), (3, 4, 30)]):
        params = random_params(seed, data_dim, latent_dim)
        z, x = inputs(seed, batch, latent_dim, data_dim)
        yield params, z, x


def bernoulli_variants(logits, x, mask=None):
    """Wrong answers of log p(x|z) made from the decoder's logits."""
    logits, x = np.asarray(logits, np.float64), np.asarray(x, np.float64)
    per_pixel = np.asarray(densities.bernoulli_log_density(logits, x), np.float64)
    with np.errstate(all="ignore"):
        as_means = x * np.log(logits) + (1 - x) * np.log1p(-logits)  # logits taken for probabilities
    keep = np.ones(x.shape[-1], bool) if mask is None else mask
    return per_pixel, {
        "it treats the decoder's logits as Bernoulli means (probabilities): use the logits, "
        "log p(x|z) = -log(1 + exp(-(2x - 1) logits)) per pixel": np.where(keep, as_means, 0).sum(-1),
        "it takes the sigmoid twice (the decoder already returns logits; sigmoid them once)":
            np.where(keep, densities.bernoulli_log_density(1 / (1 + np.exp(-logits)), x), 0).sum(-1)}


def check_log_likelihood(log_likelihood):
    """Checks log_likelihood(theta, x, z) -> (B,) against aevb's, also at logits over a hundred; raises Wrong naming the
    mistake."""
    for params, z, x in log_likelihood_cases():
        theta = params["decoder"]
        logits = NET.decode(theta, z)
        want = np.asarray(probability.log_likelihood(NET, theta, x, z), np.float64)
        per_pixel, variants = bernoulli_variants(logits, x)
        got = call("log_likelihood", log_likelihood, theta, x, z)
        compare("log_likelihood", got, want, {**variants, **sum_variants(per_pixel, "pixels")},
                 f"x of shape {x.shape}")
    # A trained decoder's logits reach tens (a background pixel is almost surely 0): log(sigmoid(l)) written
    # as it reads gives log(0) = -inf there, and training NaN. Its logits here: over a hundred in size.
    params, z, x = next(log_likelihood_cases())
    theta = {**params["decoder"], "out": {k: 40.0 * v for k, v in params["decoder"]["out"].items()}}
    want = np.asarray(probability.log_likelihood(NET, theta, x, z), np.float64)
    got = numbers("log_likelihood", call("log_likelihood", log_likelihood, theta, x, z), f"x of shape {x.shape}")
    if not np.all(np.isfinite(got)):
        largest = float(np.max(np.abs(NET.decode(theta, z))))
        raise Wrong(f"log_likelihood gives {got.ravel()[~np.isfinite(got.ravel())][0]} for logits as large as a "
                    f"trained decoder's (up to {largest:.0f} here): log(sigmoid(l)) and log(1 - sigmoid(l)) "
                    "underflow to log(0); write log p(x|z) = -log(1 + exp(-(2x - 1) l)) with jnp.logaddexp")
    compare("log_likelihood", got, want, {}, f"x of shape {x.shape} and large logits")
    params = random_params(0)
    structure("log_likelihood", log_likelihood, lambda b: (params["decoder"], inputs(0, b)[1], inputs(0, b)[0]))


def check_joint_log_density(joint_log_density):
    """Checks joint_log_density(theta, x, z) = log p(z) + log p(x|z) (B,); raises Wrong naming the mistake."""
    for params, z, x in log_likelihood_cases():
        theta = params["decoder"]
        prior = np.asarray(probability.log_prior(z), np.float64)
        likelihood = np.asarray(probability.log_likelihood(NET, theta, x, z), np.float64)
        got = call("joint_log_density", joint_log_density, theta, x, z)
        compare("joint_log_density", got, prior + likelihood, {
            "it is missing log p(z): the joint is log p(z) + log p(x|z)": likelihood,
            "it is missing log p(x|z): the joint is log p(z) + log p(x|z)": prior,
            "it subtracts log p(z): the joint is log p(z) + log p(x|z)": likelihood - prior,
            "it has the wrong sign": -(prior + likelihood),
            "it sums over the batch too: keep one value per image (shape (B,))": (prior + likelihood).sum()},
            f"x of shape {x.shape}")
    params = random_params(0)
    structure("joint_log_density", joint_log_density,
               lambda b: (params["decoder"], inputs(0, b)[1], inputs(0, b)[0]))


# ---- question 2: the recognition model -----------------------------------------------------------


def check_encoder(encoder):
    """Checks encoder(phi, x) -> (mean, log_std), each (B, Dz); raises Wrong naming the mistake (the order, std for log
    std)."""
    for seed, (batch, latent_dim, data_dim) in enumerate([(3, 2, 784), (2, 3, 20)]):
        params = random_params(seed, data_dim, latent_dim)
        _, x = inputs(seed, batch, latent_dim, data_dim)
        mean, log_std = (np.asarray(p, np.float64) for p in NET.encode(params["encoder"], x))
        got = call("encoder", encoder, params["encoder"], x)
        if not (isinstance(got, (tuple, list)) and len(got) == 2):
            raise Wrong("encoder must return a pair (mean, log_std), each of shape (B, Dz); it returned "
                        f"{type(got).__name__}" + (f" of shape {np.shape(got)}" if hasattr(got, "shape") else ""))
        got_mean, got_log_std = got
        if close(got_mean, log_std) and close(got_log_std, mean):
            raise Wrong("encoder returns (log_std, mean): the first Dz outputs are the mean, the last Dz log_std")
        if close(got_mean, mean) and close(got_log_std, np.exp(log_std)):
            raise Wrong("encoder returns the std, not log_std: the network's outputs are log std (any real "
                        "number); exp gives the std")
        compare("encoder's mean", got_mean, mean, {"it has tanh on the output layer too": np.tanh(mean)},
                 f"x of shape {x.shape}")
        compare("encoder's log_std", got_log_std, log_std, {"it has tanh on the output layer too":
                                                             np.tanh(log_std)}, f"x of shape {x.shape}")
    params = random_params(0)
    structure("encoder", encoder, lambda b: (params["encoder"], inputs(0, b)[1]))


def check_log_q(log_q):
    """Checks log_q(mean, log_std, z) -> (B,) against aevb's; raises Wrong naming the mistake."""
    for seed, (batch, latent_dim) in enumerate([(1, 2), (5, 2), (3, 6)]):
        z, _ = inputs(seed, batch, latent_dim)
        mean, raw = inputs(seed + 50, batch, latent_dim)[0], inputs(seed + 70, batch, latent_dim)[0]
        log_std = 0.5 * raw
        want = np.asarray(probability.log_q((mean, log_std), z), np.float64)
        standardized = (z - mean) * np.exp(-log_std)
        per_element = np.asarray(-0.5 * densities.LOG_2PI - log_std - 0.5 * standardized**2, np.float64)
        with np.errstate(all="ignore"):
            as_std = (-0.5 * densities.LOG_2PI - np.log(np.abs(log_std)) - 0.5 * ((z - mean) / log_std) ** 2).sum(-1)
        got = call("log_q", log_q, mean, log_std, z)
        compare("log_q", got, want, {
            **sum_variants(per_element, "z"),
            "it treats log_std as the std: the std is exp(log_std)": as_std,
            "it is missing the -log std term (the Gaussian's normalizer depends on the std)":
                (per_element + np.asarray(log_std)).sum(-1),
            "it is the standard normal's log density: q's mean and std are missing":
                np.asarray(probability.log_prior(z), np.float64)}, f"z of shape {z.shape}")
    structure("log_q", log_q, lambda b: (*inputs(1, b)[:1], 0.1 * inputs(2, b)[0], inputs(3, b)[0]))
