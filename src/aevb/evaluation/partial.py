"""Inference from a partly observed image: p(z | observed pixels) by stochastic variational
inference, and the prediction of the unobserved pixels.

Under the model each pixel depends on z alone, so p(z, observed x) is the joint with the
unobserved pixels summed out, which is exactly leaving their factors out of the product:
aevb.model.probability's functions with a mask. Masks are boolean (D,) arrays, True where a pixel is observed.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ..errors import ConfigError
from ..model import densities, probability
from . import bounds

MASKS = ("top", "bottom", "left", "right", "random")


def make_mask(kind, image_shape, key=None, fraction=0.5):
    """A flat (rows * columns,) boolean mask of observed pixels: top = the upper half of the rows,
    bottom = the lower half, left / right = halves of the columns, random = each pixel observed
    with probability fraction (drawn with key). kind: one of MASKS. ValueError otherwise."""
    rows, cols = np.divmod(np.arange(image_shape[0] * image_shape[1]), image_shape[1])
    halves = {"top": rows < image_shape[0] // 2, "bottom": rows >= image_shape[0] // 2,
              "left": cols < image_shape[1] // 2, "right": cols >= image_shape[1] // 2}
    if kind in halves:
        return halves[kind]
    if kind == "random":
        key = jax.random.PRNGKey(0) if key is None else key
        return np.asarray(jax.random.uniform(key, rows.shape) < fraction)
    raise ValueError(f"mask is one of {', '.join(MASKS)}, not {kind!r}")


def fit_q(key, net, theta, x, mask, latent_dim, num_samples=100, steps=150, learning_rate=0.05, starts=None):
    """Stochastic variational inference of p(z | observed x): Adam on (mean, log_std) of q.

    p(z | observed) can have several modes and gradient ascent finds the one nearest its start,
    so the fit runs from several starting means at once (vmapped) and keeps the best final ELBO.
    starts: (S, Dz) starting means; by default the 4 most probable of 2000 prior draws.
    Returns ((mean, log_std), elbo_trace (steps,)) of the best start. One compiled region."""
    start_key, fit_key = jax.random.split(key)
    x, mask = jnp.asarray(x), jnp.asarray(mask)
    if starts is None:
        starts = _likeliest_starts(start_key, net, theta, x, mask, latent_dim)
    (means, log_stds), traces = _fit_q(fit_key, net, theta, x, mask, jnp.asarray(starts), num_samples, steps,
                                       learning_rate)
    means, log_stds, traces = np.asarray(means), np.asarray(log_stds), np.asarray(traces)
    best = int(np.argmax(np.mean(traces[:, -final_steps(steps):], axis=1)))
    return (means[best], log_stds[best]), traces[best]


@jax.jit(static_argnames=("net", "latent_dim"))
def _likeliest_starts(key, net, theta, x, mask, latent_dim):
    """The 4 likeliest of 2000 draws of the model's prior by log p(z, observed x): (4, Dz)."""
    candidates = net.prior.sample(key, net, theta, 2000, latent_dim)
    return candidates[jnp.argsort(-probability.log_joint(net, theta, x, candidates, mask))[:4]]


def final_steps(steps):
    """How many of the last SVI steps judge a fit: the last 10%."""
    return max(steps // 10, 1)


def svi(key, net, theta, x, mask, q, num_samples, steps, learning_rate):
    """Adam on q = (mean, log_std) from the given start, maximizing the ELBO of q for log p(observed x) (elbo_of with
    the mask, num_samples z per step): ((mean, log_std), elbo trace (steps,)). Pure: callers vmap it in one jit."""
    opt = optax.adam(learning_rate)

    def step(carry, step_key):
        q, opt_state = carry
        neg_elbo, grads = jax.value_and_grad(lambda q: -probability.elbo_of(step_key, net, theta, x, q, num_samples,
                                                                      mask))(q)
        updates, opt_state = opt.update(grads, opt_state, q)
        return (optax.apply_updates(q, updates), opt_state), -neg_elbo

    (q, _), trace = jax.lax.scan(step, (q, opt.init(q)), jax.random.split(key, steps))
    return q, trace


@jax.jit(static_argnames=("net", "num_samples", "steps", "learning_rate"))
def _fit_q(key, net, theta, x, mask, starts, num_samples, steps, learning_rate):
    # std e^-1 at the start: narrower than the prior, to stay in the start's mode.
    return jax.vmap(lambda start: svi(key, net, theta, x, mask, (start, jnp.full_like(start, -1.0)), num_samples,
                                      steps, learning_rate))(starts)


@jax.jit(static_argnames=("net", "num_samples", "latent_dim"))
def predictive_log_likelihood(key, net, theta, x, unobserved, q, num_samples=10000, latent_dim=None):
    """log E_{z ~ q} p(x_unobserved | z) (unobserved: a mask) by Monte Carlo with log-sum-exp, nats: with q the
    fitted q it scores the true hidden pixels under the predictive; with q None, under the model's prior's."""
    z = densities.sample_diag_gaussian(key, *q, (num_samples,)) if q is not None else net.prior.sample(
        key, net, theta, num_samples, latent_dim)  # (M, Dz)
    return probability.iwae_bound(probability.log_likelihood(net, theta, x, z, unobserved))


def choose_image(elbos, labels, excluded=(1,)):
    """The criterion: the image with the highest ELBO among classes not in excluded (on MNIST, ones
    are fitted best but their bottom half is a plain stroke, which says little); elbos (N,) and labels (N,)."""
    candidates = np.where(~np.isin(np.asarray(labels), excluded))[0]
    return int(candidates[np.argmax(np.asarray(elbos)[candidates])])


def posterior_pixel_correlation(key, net, theta, x, mask, q, num_samples=20000):
    """Under p(unobserved | observed), the strongest correlation between two unobserved pixels.

    p(z | observed) is represented by self-normalized importance sampling from the fitted q
    (weights p(z, observed) / q(z)). Given z the pixels are independent, so
    E[x_i x_j] = E_z[p_i p_j] and Cov = E_z[p_i p_j] - E_z[p_i] E_z[p_j], computed exactly
    from the weighted samples. Returns (i, j, correlation, effective sample size).
    """
    w, p = (np.asarray(a, np.float64) for a in _weighted_means(key, net, theta, jnp.asarray(x), jnp.asarray(mask),
                                                              tuple(jnp.asarray(a) for a in q), num_samples))
    hidden = np.where(~np.asarray(mask))[0]
    p = p[:, hidden]  # (M, H)
    mean_p = w @ p  # (H,)
    cov = (p * w[:, None]).T @ p - np.outer(mean_p, mean_p)
    var = mean_p * (1 - mean_p)  # Bernoulli variance of each pixel under the predictive
    np.fill_diagonal(cov, 0.0)
    corr = cov / np.sqrt(np.outer(var, var) + 1e-300)
    a, b = np.unravel_index(np.argmax(np.abs(corr)), corr.shape)
    return int(hidden[a]), int(hidden[b]), float(corr[a, b]), float(1.0 / np.sum(w**2))


@jax.jit(static_argnames=("net", "num_samples"))
def _weighted_means(key, net, theta, x, mask, q, num_samples):
    """num_samples z ~ q: their self-normalized importance weights (M,) and Bernoulli means (M, D)."""
    z = densities.sample_diag_gaussian(key, *q, (num_samples,))  # (M, Dz)
    weights = jax.nn.softmax(probability.log_weights(net, theta, x, z, q, mask))
    return weights, probability.bernoulli_means(net, theta, z)


# Compiled whole, as those above: op by op each operation compiled apart (125 compilations, 3 of 6 s in aevb run)
_log_joint = jax.jit(probability.log_joint, static_argnames="net")  # the posterior's grid: once per grid shape
_log_q = jax.jit(probability.log_q)
_means_at_draws = jax.jit(lambda key, net, theta, q, n: probability.bernoulli_means(
    net, theta, densities.sample_diag_gaussian(key, *q, (n,))), static_argnames=("net", "n"))  # the completions


def posterior_grid(net, theta, x, mask, q, encoder_q, n=160):
    """log p(z, observed x) and log q(z) over a grid of z covering the posterior, q and the
    encoder's q(z | whole x) (encoder_q). Returns (z1 axis, z2 axis, log_joint (n, n), log_q (n, n))."""
    mean, log_std = (np.asarray(a, np.float64) for a in q)
    enc_mean, enc_log_std = (np.asarray(a, np.float64) for a in encoder_q)
    # A coarse look first, to find where the true posterior lives even if q missed it.
    coarse = np.linspace(-6, 6, 61)
    c1, c2 = np.meshgrid(coarse, coarse, indexing="ij")
    zs = np.stack([c1.ravel(), c2.ravel()], -1).astype(np.float32)
    coarse_joint = np.asarray(_log_joint(net, theta, x, zs, mask))
    high = zs[coarse_joint > coarse_joint.max() - 12]
    corners = np.concatenate([high, [mean - 3.5 * np.exp(log_std), mean + 3.5 * np.exp(log_std),
                                     enc_mean - 3 * np.exp(enc_log_std), enc_mean + 3 * np.exp(enc_log_std)]])
    low, top = corners.min(axis=0) - 0.3, corners.max(axis=0) + 0.3
    axis1, axis2 = np.linspace(low[0], top[0], n), np.linspace(low[1], top[1], n)
    g1, g2 = np.meshgrid(axis1, axis2, indexing="ij")
    zs = np.stack([g1.ravel(), g2.ravel()], -1).astype(np.float32)
    log_joint = np.asarray(_log_joint(net, theta, x, zs, mask)).reshape(n, n)
    log_q_grid = np.asarray(_log_q(tuple(jnp.asarray(a, jnp.float32) for a in q), jnp.asarray(zs)))
    return axis1, axis2, log_joint, log_q_grid.reshape(n, n)


@dataclasses.dataclass(frozen=True, eq=False)
class Completion:
    """Inference from part of one image: the SVI fit, completions and their scores (nats)."""

    image: np.ndarray  # (D,) the whole image, 0/1
    mask: np.ndarray  # (D,) True where observed
    q_mean: np.ndarray  # (Dz,) the SVI fit of p(z | observed)
    q_log_std: np.ndarray
    elbo_trace: np.ndarray  # (steps,) the SVI objective
    encoder_mean: np.ndarray  # (Dz,) the encoder's q(z | whole image), for comparison
    encoder_log_std: np.ndarray
    completions: np.ndarray  # (n, D): observed pixels as they are, the rest means of p(x|z), z ~ q
    log_p_hidden_under_q_predictive: float
    log_p_hidden_under_prior_predictive: float
    log_p_hidden_under_encoder_predictive: float  # a reference that has seen the hidden pixels
    correlation: tuple  # (i, j, correlation, effective sample size): see posterior_pixel_correlation
    grid: tuple = None  # posterior_grid(...) when Dz = 2
    # Where the image came from, filled in by aevb.pipeline.
    mask_name: str = "custom"
    index: int = None
    label: int = None
    criterion: str = ""

    @property
    def hidden_pixels(self):
        return int((~self.mask).sum())

    def summary(self):
        """The numbers summary.json holds for this completion."""
        return {"index": self.index, "label": self.label, "criterion": self.criterion, "mask": self.mask_name,
                "hidden_pixels": self.hidden_pixels, "q_mean": self.q_mean.tolist(),
                "q_std": np.exp(self.q_log_std).tolist(),
                "svi_final_elbo": float(np.mean(self.elbo_trace[-final_steps(len(self.elbo_trace)):])),
                "log_p_hidden_under_q_predictive": self.log_p_hidden_under_q_predictive,
                "log_p_hidden_under_prior_predictive": self.log_p_hidden_under_prior_predictive,
                "log_p_hidden_under_encoder_of_whole_image": self.log_p_hidden_under_encoder_predictive,
                "units": "nats per image"}


def complete(key, net, params, x, mask, latent_dim, num_samples=100, steps=150, learning_rate=0.05,
             n_completions=8):
    """Everything the completion figures and numbers need, for one image x (D,) and a mask: q fitted in steps
    of SVI, n_completions completions drawn."""
    theta, x, mask = probability.generative(net, params), np.asarray(x), np.asarray(mask)
    fit_key, sample_key, predictive_key, prior_key, corr_key = jax.random.split(key, 5)
    q, trace = fit_q(fit_key, net, theta, x, mask, latent_dim, num_samples, steps, learning_rate)
    encoder_q = (lambda q: (np.asarray(q.mean), np.asarray(q.log_std)))(net.encode(params["encoder"], jnp.asarray(x)))
    hidden = ~mask
    return Completion(
        image=x, mask=mask, q_mean=np.asarray(q[0]), q_log_std=np.asarray(q[1]), elbo_trace=np.asarray(trace),
        encoder_mean=encoder_q[0], encoder_log_std=encoder_q[1],
        completions=np.where(mask, x, np.asarray(_means_at_draws(sample_key, net, theta, q, n_completions))),
        log_p_hidden_under_q_predictive=float(predictive_log_likelihood(predictive_key, net, theta, x, hidden, q)),
        log_p_hidden_under_prior_predictive=float(predictive_log_likelihood(prior_key, net, theta, x, hidden, None,
                                                                            latent_dim=latent_dim)),
        log_p_hidden_under_encoder_predictive=float(predictive_log_likelihood(predictive_key, net, theta, x, hidden,
                                                                              encoder_q)),
        correlation=posterior_pixel_correlation(corr_key, net, theta, x, mask, q),
        grid=posterior_grid(net, theta, x, mask, q, encoder_q) if latent_dim == 2 else None,
    )


def infer(net, params, split, latent_dim, eval_samples, mask="top", index=None, seed=0):
    """complete() (seed: its draws) for training image index of split (a Split) with mask's pixels observed, its mask's
    name, label and how it was chosen; index None: the image a stated criterion picks (the best-fitted image outside
    the best-fitted class, by ELBOs of eval_samples draws), ConfigError for one outside the training images."""
    if index is None:
        elbos = bounds.elbo_per_image(net, params, split.x_train, eval_samples)
        # The best-fitted class is the simplest (MNIST: 1, a plain stroke): its hidden half says little.
        classes = np.unique(split.y_train)
        if len(classes) > 1:
            best_class = max(classes, key=lambda label: elbos[split.y_train == label].mean())
            index = choose_image(elbos, split.y_train, excluded=(best_class,))
            criterion = (f"highest ELBO among training images outside class "
                         f"{split.dataset.class_names[best_class]}, the best-fitted class")
        else:  # one class (an npz without labels): nothing to set aside
            index = choose_image(elbos, split.y_train, excluded=())
            criterion = "highest ELBO among the training images (the data has one class)"
    elif not 0 <= index < len(split.x_train):
        raise ConfigError(f"--index must be from 0 to {len(split.x_train) - 1}")
    else:
        criterion = "chosen with --index"
    observed = make_mask(mask, split.image_shape, jax.random.PRNGKey(seed))
    completion = complete(jax.random.PRNGKey(seed), net, params, split.x_train[index], observed, latent_dim)
    return dataclasses.replace(completion, mask_name=mask, index=index, label=int(split.y_train[index]),
                               criterion=criterion)
