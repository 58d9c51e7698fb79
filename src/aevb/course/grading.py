"""The assignment's autograder: each student function against aevb's own, on random inputs and shapes.

Every check_* takes the student's function and returns None when it agrees with aevb's; otherwise it
raises Wrong (an AssertionError, so nbgrader and pytest count it as a failed test) whose message says
what is wrong in words: a missing sum, a wrong sign, means instead of logits, a loop over the batch,
a framework distribution. The student's functions follow the assignment's conventions::

    log_prior(z)                          z (B, Dz) -> (B,)
    decoder(theta, z)                     -> Bernoulli logits (B, D)
    log_likelihood(theta, x, z)           x (B, D) in {0, 1} -> (B,), summed over pixels
    joint_log_density(theta, x, z)        log p(z) + log p(x|z) -> (B,)
    encoder(phi, x)                       -> (mean, log_std), each (B, Dz)
    log_q(mean, log_std, z)               -> (B,)
    elbo(key, params, x)                  one z per image, eps = jax.random.normal(key, mean.shape);
                                          the mean over the batch, a scalar
    loss(key, params, x)                  -elbo(key, params, x)
    top_half_log_likelihood(theta, x, z)  log p(top half of x | z): the first rows // 2 * cols pixels
    svi_elbo(key, theta, x, mean, log_std, num_samples)
                                          the ELBO of q = N(mean, exp(log_std)^2) (Dz,) for the top
                                          half of one image x (D,); eps = jax.random.normal(key,
                                          (num_samples, Dz)); a scalar

theta and phi are the decoder's and the encoder's parameters as aevb.model.networks.mlp makes them:
{"hidden": {"weight": (n_in, h), "bias": (h,)}, "out": {"weight": (h, n_out), "bias": (n_out,)}},
tanh hidden units; the encoder's output layer gives the mean first, then log_std.
"""

import jax
import jax.numpy as jnp
import numpy as np

from ..model import densities, probability
from . import densities_checks
from .densities_checks import bernoulli_variants, log_likelihood_cases
from .diagnoses import (ATOL, IMAGE_SHAPE, NET, Wrong, call, compare, inputs, numbers, random_params, structure,
                        uses_framework, within_time)


def _elbo_terms(key, params, x):
    """aevb's log p(x, z) and log q(z|x) per image, (B,) each, at the assignment's draw: z = mean + std * eps,
    eps = normal(key, mean.shape), which is densities.sample_diag_gaussian's."""
    q = NET.encode(params["encoder"], x)
    z = densities.sample_diag_gaussian(key, *q)  # (B, Dz)
    return probability.log_joint(NET, params["decoder"], x, z), probability.log_q(q, z)


def _elbo_per_image(key, params, x):
    joint, log_q = _elbo_terms(key, params, x)
    return joint - log_q


def _elbo_cases():
    for seed, (batch, latent_dim, data_dim) in enumerate([(4, 2, 784), (3, 3, 30)]):
        params = random_params(seed, data_dim, latent_dim)
        yield jax.random.PRNGKey(seed), params, inputs(seed, batch, latent_dim, data_dim)[1]


def _elbo_variants(key, params, x):
    joint, log_q = (np.asarray(term, np.float64) for term in _elbo_terms(key, params, x))
    per_image = joint - log_q
    return per_image.mean(), {
        "it returns one value per image: the ELBO here is their mean over the batch (a scalar)": per_image,
        "it sums over the batch: the ELBO here is the mean over the batch": per_image.sum(),
        "it has the wrong sign (the ELBO is log p(x, z) - log q(z|x), a lower bound on log p(x))":
            -per_image.mean(),
        "it is missing -log q(z|x): the ELBO is the mean of log p(x, z) - log q(z|x)": joint.mean(),
        "it adds log q(z|x) instead of subtracting it": (joint + log_q).mean()}


def _reparameterized(name, f, key, params, x, sign):
    """The gradient of f with respect to the encoder's parameters equals aevb's: z is a differentiable
    function of the encoder's output (the reparameterization trick)."""
    def reference(p):
        return sign * jnp.mean(_elbo_per_image(key, p, x))

    got = jax.grad(lambda p: f(key, p, x))(params)
    want = jax.grad(reference)(params)
    for part, words in (("encoder", "the encoder's (phi)"), ("decoder", "the decoder's (theta)")):
        g, w = (np.concatenate([np.ravel(leaf) for leaf in jax.tree_util.tree_leaves(t[part])]) for t in (got, want))
        if not np.allclose(g, w, rtol=1e-3, atol=1e-3 * max(1.0, np.abs(w).max())):
            hint = (" (is z = mean + exp(log_std) * eps, with eps drawn from the key, and no stop_gradient?)"
                    if part == "encoder" and not np.any(g) else "")
            raise Wrong(f"{name}: its gradient with respect to {words} parameters differs from aevb's{hint}")


def _draws_differently(elbo, params, x):
    """Raises the verdict "draws z differently" where elbo's mean over keys agrees with the ELBO's, on
    parameters quiet enough (the decoder's weights x 0.1, the encoder's as they are) that a wrong formula shows
    as a difference."""
    params = {**params, "decoder": jax.tree_util.tree_map(lambda a: 0.1 * a, params["decoder"])}
    keys = jax.random.split(jax.random.PRNGKey(7), 120)
    mine = np.array([float(numbers("elbo", elbo(k, params, x))) for k in keys[:60]])
    theirs = np.array([float(jnp.mean(_elbo_per_image(k, params, x))) for k in keys[60:]])
    err = np.hypot(mine.std() / np.sqrt(len(mine)), theirs.std() / np.sqrt(len(theirs)))
    if abs(mine.mean() - theirs.mean()) < 4 * err + ATOL:
        raise Wrong("elbo draws z differently from the assignment: use eps = jax.random.normal(key, "
                    "mean.shape) and z = mean + exp(log_std) * eps (its mean over keys does agree)")


def check_elbo(elbo):
    """Checks elbo(key, params, x) -> scalar on its draws; raises Wrong naming the mistake."""
    for key, params, x in _elbo_cases():
        want, variants = _elbo_variants(key, params, x)
        got = call("elbo", elbo, key, params, x)
        # The known wrong answers first; then, for a scalar, whether it is the right ELBO with other draws.
        compare("elbo", got, want, variants, f"x of shape {x.shape}",
                otherwise=lambda: np.ndim(got) == 0 and _draws_differently(elbo, params, x))  # noqa: B023
    key, params, x = next(_elbo_cases())
    _reparameterized("elbo", elbo, key, params, x, 1.0)
    structure("elbo", elbo, lambda b: (key, params, inputs(0, b)[1]))


def check_loss(loss):
    """Checks loss(key, params, x) = -ELBO; raises Wrong naming the mistake."""
    for key, params, x in _elbo_cases():
        want, variants = _elbo_variants(key, params, x)
        got = call("loss", loss, key, params, x)
        compare("loss", got, -want, {
            "it returns the ELBO itself: the loss to minimize is minus the ELBO": want,
            **{message: -np.asarray(value) for message, value in variants.items() if "sign" not in message}},
            f"x of shape {x.shape}")
    key, params, x = next(_elbo_cases())
    _reparameterized("loss", loss, key, params, x, -1.0)
    structure("loss", loss, lambda b: (key, params, inputs(0, b)[1]))


# ---- question 4 ---------------------------------------------------------------------------------


def top_half_mask(image_shape=IMAGE_SHAPE):
    """True on the top half's pixels: rows 0 to rows // 2 - 1, (rows * cols,)."""
    rows, cols = image_shape
    return np.arange(rows * cols) < (rows // 2) * cols


def check_top_half_log_likelihood(top_half_log_likelihood):
    """Checks top_half_log_likelihood(theta, x, z) (B,) on rows 0-13; raises Wrong naming the mistake."""
    mask = top_half_mask()
    for params, z, x in list(log_likelihood_cases())[:2]:  # 28 x 28 images
        theta = params["decoder"]
        logits = NET.decode(theta, z)
        want = np.asarray(probability.log_likelihood(NET, theta, x, z, mask), np.float64)
        per_pixel, variants = bernoulli_variants(logits, x, mask)
        got = call("top_half_log_likelihood", top_half_log_likelihood, theta, x, z)
        compare("top_half_log_likelihood", got, want, {
            "it sums over every pixel: only the top half (rows 0-13, the first 392 pixels) is observed":
                per_pixel.sum(-1),
            "it sums over the bottom half: the top half is rows 0-13, the first 392 pixels":
                np.where(mask, 0, per_pixel).sum(-1),
            "it is missing the sum over the top half's pixels": np.where(mask, per_pixel, 0),
            "it keeps only the top half's pixels but does not sum them": per_pixel[..., mask],
            **variants,
            "it has the wrong sign": -want}, f"x of shape {x.shape}")
    params = random_params(0)
    structure("top_half_log_likelihood", top_half_log_likelihood,
               lambda b: (params["decoder"], inputs(0, b)[1], inputs(0, b)[0]))


def _svi_reference(key, theta, x, mean, log_std, num_samples, mask):
    z = densities.sample_diag_gaussian(key, mean, log_std, (num_samples,))  # (S, Dz), eps = normal(key, (S, Dz))
    q = (mean, log_std)
    prior, likelihood = probability.log_prior(z), probability.log_likelihood(NET, theta, x, z, mask)  # (S,) each
    entropy_term = -probability.log_q(q, z)
    return {name: float(jnp.mean(value)) for name, value in (
        ("right", prior + likelihood + entropy_term), ("no_q", prior + likelihood),
        ("whole", prior + probability.log_likelihood(NET, theta, x, z) + entropy_term),
        ("no_prior", likelihood + entropy_term), ("plus_q", prior + likelihood - entropy_term))}


def check_svi_elbo(svi_elbo):
    """Checks svi_elbo(key, theta, x, mean, log_std, num_samples) and its gradient; raises Wrong naming the mistake."""
    mask = top_half_mask()
    for seed, num_samples in enumerate((1, 7)):
        params = random_params(seed)
        _, x = inputs(seed, 1, 2)
        x = x[0]  # one image (D,)
        mean, log_std = jnp.array([0.3, -0.8]), jnp.array([-0.5, 0.2])
        key = jax.random.PRNGKey(seed + 5)
        values = _svi_reference(key, params["decoder"], x, mean, log_std, num_samples, mask)
        got = call("svi_elbo", svi_elbo, key, params["decoder"], x, mean, log_std, num_samples)
        compare("svi_elbo", got, values["right"], {
            "it scores every pixel: the ELBO here is of the top half only (rows 0-13)": values["whole"],
            "it is missing -log q(z): the ELBO is the mean of log p(z) + log p(top | z) - log q(z)": values["no_q"],
            "it is missing log p(z)": values["no_prior"],
            "it adds log q(z) instead of subtracting it": values["plus_q"],
            "it has the wrong sign": -values["right"]}, f"{num_samples} samples")
    params = random_params(0)
    grad = jax.grad(lambda m, s: svi_elbo(jax.random.PRNGKey(0), params["decoder"], inputs(0, 1)[1][0], m, s, 5),
                    argnums=(0, 1))(jnp.array([0.3, -0.8]), jnp.array([-0.5, 0.2]))
    if not all(np.all(np.isfinite(g)) and np.any(g) for g in grad):
        raise Wrong("svi_elbo: its gradient with respect to mean or log_std is zero or not finite: draw z as "
                    "mean + exp(log_std) * eps so that the ELBO is differentiable in q's parameters")


CHECKS = {name: getattr(densities_checks, f"check_{name}") for name in
          ("log_prior", "decoder", "log_likelihood", "joint_log_density", "encoder", "log_q")}
CHECKS |= {"elbo": check_elbo, "loss": check_loss, "top_half_log_likelihood": check_top_half_log_likelihood,
          "svi_elbo": check_svi_elbo}


# aevb's answers with the assignment's conventions: while one function is checked, the student's other
# graded functions it calls are these, so that each check grades one function.
REFERENCES = {
    "log_prior": probability.log_prior,
    "decoder": NET.decode,
    "log_likelihood": lambda theta, x, z: probability.log_likelihood(NET, theta, x, z),
    "joint_log_density": lambda theta, x, z: probability.log_joint(NET, theta, x, z),
    "encoder": NET.encode,
    "log_q": lambda mean, log_std, z: probability.log_q((mean, log_std), z),
    "elbo": lambda key, params, x: jnp.mean(_elbo_per_image(key, params, x)),
    "loss": lambda key, params, x: -jnp.mean(_elbo_per_image(key, params, x)),
    "top_half_log_likelihood": lambda theta, x, z: probability.log_likelihood(NET, theta, x, z, top_half_mask()),
    "svi_elbo": lambda key, theta, x, mean, log_std, num_samples: _svi_reference(
        key, theta, x, mean, log_std, num_samples, top_half_mask())["right"],
}


def check(name, function):
    """Grades the student's function name: prints a line on success (for the notebook), else raises Wrong
    with one message (no traceback into the reference). The student's other graded functions are replaced
    by aevb's while it runs; any error of the student's code is a verdict; SECONDS_PER_CHECK at most."""
    if name not in CHECKS:
        raise Wrong(f"there is no check named {name!r}; the checks are {', '.join(CHECKS)}")
    if not callable(function):
        raise Wrong(f"{name} is not a function (it is a {type(function).__name__}): define it with def {name}(...)")
    namespace = getattr(function, "__globals__", {})
    replaced = {other: namespace[other] for other in REFERENCES if other != name and callable(namespace.get(other))}
    verdict = None
    try:
        uses_framework(name, function, graded=set(CHECKS) - {name})
        namespace.update({other: REFERENCES[other] for other in replaced})
        within_time(name, lambda: CHECKS[name](function))
    except Wrong as wrong:
        verdict = str(wrong)
    except Exception as error:  # the student's function failing on a later call, or on a traced value
        verdict = f"{name} raised {type(error).__name__} while being checked: {str(error).splitlines()[0][:300]}"
    finally:
        namespace.update(replaced)
    if verdict is not None:
        raise Wrong(verdict)  # raised here, from None: the traceback shows no reference formula
    print(f"{name}: correct (agrees with aevb's on random inputs and shapes)")
