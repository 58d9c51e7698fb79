"""Inference from a partly observed image: p(z | observed pixels) by stochastic variational
inference, and the prediction of the unobserved pixels.

Under the model, each pixel is a leaf: x_d depends only on z. So p(z, observed x) is the
joint with the unobserved pixels summed out, which for a leaf is exactly leaving their
factors out of the product: log p(z, x_obs) = log p(z) + sum over observed d of log p(x_d | z).
Masks are boolean (784,) arrays, True where a pixel is observed.
"""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from . import densities, model

SIDE = 28
MASKS = ("top", "bottom", "left", "right", "random")


def make_mask(kind, key=None, fraction=0.5):
    """A (784,) boolean mask of observed pixels: top = rows 0-13, bottom = rows 14-27,
    left = columns 0-13, right = columns 14-27, random = each pixel observed with prob fraction."""
    rows, cols = np.divmod(np.arange(SIDE * SIDE), SIDE)
    if kind == "top":
        return rows < SIDE // 2
    if kind == "bottom":
        return rows >= SIDE // 2
    if kind == "left":
        return cols < SIDE // 2
    if kind == "right":
        return cols >= SIDE // 2
    if kind == "random":
        key = jax.random.PRNGKey(0) if key is None else key
        return np.asarray(jax.random.uniform(key, (SIDE * SIDE,)) < fraction)
    raise ValueError(f"mask is one of {', '.join(MASKS)}, not {kind!r}")


def top_half(x):
    """Rows 0-13 of each 28x28 image: (..., 784) -> (..., 392)."""
    return x[..., : SIDE * SIDE // 2]


def log_likelihood_observed(theta, x, z, mask):
    """log p(observed x | z): the sum over observed pixels only. x (784,) or (..., 784) broadcast
    against z (..., Dz) -> (...). Unobserved pixels never enter, whatever values they hold."""
    logits = model.decoder(theta, z)  # (..., 784)
    per_pixel = densities.bernoulli_log_density(logits, jnp.broadcast_to(x, logits.shape))
    observed = jnp.broadcast_to(jnp.asarray(mask), logits.shape)
    return jnp.sum(jnp.where(observed, per_pixel, 0.0), axis=-1)


def log_joint_observed(theta, x, zs, mask):
    """log p(z, observed x) for each z: zs (K, Dz) -> (K,)."""
    return model.log_prior(zs) + log_likelihood_observed(theta, x, zs, mask)


def svi_elbo(key, q_params, theta, x, mask, num_samples):
    """ELBO of q(z) = N(mean, diag(exp(log_std)^2)) for log p(observed x), K reparameterized z."""
    z = densities.sample_diag_gaussian(key, *q_params, (num_samples,))  # (K, Dz)
    return jnp.mean(log_joint_observed(theta, x, z, mask) - model.log_q(q_params, z))


def fit_q(key, theta, x, mask, latent_dim=2, num_samples=100, steps=150, learning_rate=0.05, starts=None):
    """Stochastic variational inference of p(z | observed x): Adam on (mean, log_std) of q.

    p(z | observed) can have several modes and gradient ascent finds the one nearest its start,
    so the fit runs from several starting means at once (vmapped) and keeps the best final ELBO.
    starts: (S, Dz) starting means; by default the 4 most probable of 2000 prior draws.
    Returns ((mean, log_std), elbo_trace (steps,)) of the best start. One compiled region.
    """
    start_key, fit_key = jax.random.split(key)
    if starts is None:
        # Start where the posterior is: the 4 best of 2000 prior draws by log p(z, observed x).
        candidates = jax.random.normal(start_key, (2000, latent_dim))
        starts = candidates[jnp.argsort(-log_joint_observed(theta, jnp.asarray(x), candidates, jnp.asarray(mask)))[:4]]
    (means, log_stds), traces = _fit_q(fit_key, theta, jnp.asarray(x), jnp.asarray(mask), jnp.asarray(starts),
                                       num_samples, steps, learning_rate)
    tail = max(steps // 10, 1)
    best = int(jnp.argmax(jnp.mean(traces[:, -tail:], axis=1)))  # judge by the ELBO averaged over the last 10%
    return (means[best], log_stds[best]), traces[best]


@jax.jit(static_argnames=("num_samples", "steps", "learning_rate"))
def _fit_q(key, theta, x, mask, starts, num_samples, steps, learning_rate):
    opt = optax.adam(learning_rate)

    def fit_one(start):
        q_params = (start, jnp.full_like(start, -1.0))  # std e^-1: narrower than the prior, to stay in its mode

        def step(carry, step_key):
            q_params, opt_state = carry
            objective = lambda q: -svi_elbo(step_key, q, theta, x, mask, num_samples)  # noqa: E731
            neg_elbo, grads = jax.value_and_grad(objective)(q_params)
            updates, opt_state = opt.update(grads, opt_state, q_params)
            return (optax.apply_updates(q_params, updates), opt_state), -neg_elbo

        (q_params, _), trace = jax.lax.scan(step, (q_params, opt.init(q_params)), jax.random.split(key, steps))
        return q_params, trace

    return jax.vmap(fit_one)(starts)


def predictive_log_likelihood(key, theta, x, unobserved_mask, mean, log_std, num_samples=10000):
    """log E_{z ~ N(mean, std^2)} p(x_unobserved | z), by Monte Carlo with log-sum-exp, nats.

    With (mean, log_std) = the fitted q this scores the true hidden pixels under the predictive;
    with (0, 0) it is the prior predictive.
    """
    z = densities.sample_diag_gaussian(key, mean, log_std, (num_samples,))  # (M, Dz)
    log_p = log_likelihood_observed(theta, x, z, unobserved_mask)  # (M,)
    return float(jax.nn.logsumexp(log_p) - jnp.log(num_samples))


def choose_digit(elbos, labels):
    """The criterion: the training image with the highest ELBO among classes other than 1 (ones
    are fitted best but their bottom half is a plain stroke, which says little)."""
    candidates = np.where(np.asarray(labels) != 1)[0]
    return int(candidates[np.argmax(np.asarray(elbos)[candidates])])


def posterior_pixel_correlation(key, theta, x, mask, mean, log_std, num_samples=20000):
    """Under p(unobserved | observed), the strongest correlation between two unobserved pixels.

    p(z | observed) is represented by self-normalized importance sampling from the fitted q
    (weights p(z, observed) / q(z)). Given z the pixels are independent, so
    E[x_i x_j] = E_z[p_i p_j] and Cov = E_z[p_i p_j] - E_z[p_i] E_z[p_j], computed exactly
    from the weighted samples. Returns (i, j, correlation, effective sample size).
    """
    z = densities.sample_diag_gaussian(key, mean, log_std, (num_samples,))  # (M, Dz)
    log_w = log_joint_observed(theta, x, z, mask) - model.log_q((mean, log_std), z)
    w = np.asarray(jax.nn.softmax(log_w), np.float64)  # (M,)
    hidden = np.where(~np.asarray(mask))[0]
    p = np.asarray(jax.nn.sigmoid(model.decoder(theta, z)), np.float64)[:, hidden]  # (M, H)
    mean_p = w @ p  # (H,)
    cov = (p * w[:, None]).T @ p - np.outer(mean_p, mean_p)
    var = mean_p * (1 - mean_p)  # Bernoulli variance of each pixel under the predictive
    np.fill_diagonal(cov, 0.0)
    corr = cov / np.sqrt(np.outer(var, var) + 1e-300)
    a, b = np.unravel_index(np.argmax(np.abs(corr)), corr.shape)
    return int(hidden[a]), int(hidden[b]), float(corr[a, b]), float(1.0 / np.sum(w**2))


def normal_density_at_mean(std):
    """The density of N(0, std^2) at 0, from our log density."""
    zero = jnp.zeros((1, 1))
    return float(jnp.exp(densities.factorized_gaussian_log_density(zero, jnp.log(jnp.full((1, 1), std)), zero))[0])


ANSWERS = [
    ("(a) Does p(bottom | z) factorize over the bottom pixels?", True,
     "Yes: given z the decoder makes every pixel an independent Bernoulli, so p(bottom|z) is a product."),
    ("(b) Does p(bottom | top) factorize over the bottom pixels?", False,
     "No: z is unknown given only the top, and integrating it out couples the pixels (a mixture of "
     "products is not a product)."),
    ("(c) If the ELBO rises under joint optimization of theta and phi, must KL(q(z|x) || p(z|x)) fall?", False,
     "No: log p_theta(x) = ELBO + KL, and changing theta moves log p_theta(x) too, so the ELBO can rise "
     "while the KL rises as well."),
    ("(d) Can a normal density be < 0?", False,
     "No: it is exp of a real number divided by a positive constant, so it is always positive."),
    ("(e) Can a normal density be > 1?", True,
     "Yes: a density is not a probability; a narrow normal is tall, e.g. N(0, 0.1^2) at 0."),
]


def posterior_grid(theta, x, mask, q_params, encoder_q, n=160):
    """log p(z, observed x) and log q(z) over a grid of z covering the posterior, q and the
    encoder's q(z | whole x). Returns (z1 axis, z2 axis, log_joint (n, n), log_q (n, n))."""
    mean, log_std = (np.asarray(a, np.float64) for a in q_params)
    enc_mean, enc_log_std = (np.asarray(a, np.float64) for a in encoder_q)
    # A coarse look first, to find where the true posterior lives even if q missed it.
    coarse = np.linspace(-6, 6, 61)
    c1, c2 = np.meshgrid(coarse, coarse, indexing="ij")
    zs = np.stack([c1.ravel(), c2.ravel()], -1).astype(np.float32)
    coarse_joint = np.asarray(log_joint_observed(theta, x, zs, mask))
    high = zs[coarse_joint > coarse_joint.max() - 12]
    corners = np.concatenate([high, [mean - 3.5 * np.exp(log_std), mean + 3.5 * np.exp(log_std),
                                     enc_mean - 3 * np.exp(enc_log_std), enc_mean + 3 * np.exp(enc_log_std)]])
    low, top = corners.min(axis=0) - 0.3, corners.max(axis=0) + 0.3
    axis1, axis2 = np.linspace(low[0], top[0], n), np.linspace(low[1], top[1], n)
    g1, g2 = np.meshgrid(axis1, axis2, indexing="ij")
    zs = np.stack([g1.ravel(), g2.ravel()], -1).astype(np.float32)
    log_joint = np.asarray(log_joint_observed(theta, x, zs, mask)).reshape(n, n)
    log_q_grid = np.asarray(model.log_q((jnp.asarray(mean, jnp.float32), jnp.asarray(log_std, jnp.float32)),
                                        jnp.asarray(zs))).reshape(n, n)
    return axis1, axis2, log_joint, log_q_grid


def complete(key, params, x, mask, num_samples=100, steps=150, learning_rate=0.05, n_completions=8):
    """Everything the completion figures and numbers need, for one image x (784,) and a mask."""
    theta = params["decoder"]
    latent_dim = params["encoder"]["out"]["bias"].shape[0] // 2
    fit_key, sample_key, predictive_key, prior_key, corr_key = jax.random.split(key, 5)
    q_params, trace = fit_q(fit_key, theta, x, mask, latent_dim, num_samples, steps, learning_rate)
    encoder_q = tuple(np.asarray(a) for a in model.encoder(params["encoder"], jnp.asarray(x)))
    z = densities.sample_diag_gaussian(sample_key, *q_params, (n_completions,))  # (S, Dz)
    probs = np.asarray(jax.nn.sigmoid(model.decoder(theta, z)))  # (S, 784)
    completions = np.where(mask, np.asarray(x), probs)  # observed pixels as they are, the rest predicted
    hidden = ~np.asarray(mask)
    result = {
        "q_mean": np.asarray(q_params[0]), "q_log_std": np.asarray(q_params[1]), "elbo_trace": np.asarray(trace),
        "encoder_mean": encoder_q[0], "encoder_log_std": encoder_q[1], "completions": completions,
        "log_p_hidden_under_q_predictive": predictive_log_likelihood(predictive_key, theta, x, hidden, *q_params),
        "log_p_hidden_under_prior_predictive": predictive_log_likelihood(
            prior_key, theta, x, hidden, jnp.zeros(latent_dim), jnp.zeros(latent_dim)),
        "log_p_hidden_under_encoder_predictive": predictive_log_likelihood(
            predictive_key, theta, x, hidden, *(jnp.asarray(a) for a in encoder_q)),
        "hidden_pixels": int(hidden.sum()),
    }
    if latent_dim == 2:
        result["grid"] = posterior_grid(theta, x, mask, q_params, encoder_q)
    result["correlation"] = posterior_pixel_correlation(corr_key, theta, x, mask, *q_params)
    return result
