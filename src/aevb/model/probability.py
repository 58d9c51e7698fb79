"""The VAE of Kingma & Welling (2013), probability only: prior, likelihood, q, log weights, bounds.

Parameters are plain pytrees passed explicitly into pure functions; ``net`` is an
aevb.model.networks.Network (its encoder gives q's parameters, its decoder the Bernoulli logits).
theta: the decoder's parameters (the generative model p(z) p(x|z)); phi: the encoder's (the
recognition model q(z|x)); params = {"encoder": phi, "decoder": theta}; q: a posterior of
aevb.model.posteriors (the default's q = (mean, log_std)), drawn with its log density by q.sample.
Units: nats per image (summed over pixels, averaged over images).
"""

import jax
import jax.numpy as jnp

from . import densities, posteriors


def log_prior(z):
    """log p(z) = log N(z; 0, I), the assignment's prior: (..., Dz) -> (...). A model's own is log_p_z."""
    return densities.standard_normal_log_density(z)


def log_p_z(net, theta, z):
    """log p(z) of the model's prior (net.prior, aevb.model.priors; the standard one is log_prior): (..., Dz) ->
    (...). theta: generative(net, params), which holds a learned prior's parameters."""
    return net.prior.log_density(net, theta, z)


def generative(net, params):
    """theta, the parameters of p(x, z): the decoder's, itself where the prior has none (the standard prior);
    else with the prior's beside them under "prior" (the VampPrior's: the encoder's q at its pseudo-inputs,
    computed here once for every use of theta, a function of the encoder's parameters that it shares)."""
    if "prior" not in params:
        return params["decoder"]
    return {**params["decoder"], "prior": net.prior.view(net, params)}


def log_likelihood(net, theta, x, z, mask=None):
    """log p(x|z), summed over pixels, or over the observed pixels only where mask (D,) is True.

    x (..., D) is broadcast against z's leading axes, so one image (D,) scores K zs (K, Dz) -> (K,)
    and a batch (B, D) scores samples (K, B, Dz) -> (K, B). Under the model each pixel depends on z
    alone, so leaving a pixel's factor out is exactly summing it out: unobserved pixels never
    enter, whatever values they hold.
    """
    logits = net.decode(theta, z)  # (..., D)
    per_pixel = densities.bernoulli_log_density(logits, jnp.broadcast_to(x, logits.shape))
    if mask is not None:
        per_pixel = jnp.where(jnp.broadcast_to(jnp.asarray(mask), logits.shape), per_pixel, 0.0)
    return jnp.sum(per_pixel, axis=-1)


def log_joint(net, theta, x, z, mask=None):
    """log p(x, z) = log p(z) + log p(x|z) (observed pixels only, with a mask): (...)."""
    return log_p_z(net, theta, z) + log_likelihood(net, theta, x, z, mask)


def log_q(q, z):
    """log q(z) for q = (mean, log_std) (or any q whose family has a density), broadcast against z's
    leading axes: z (..., Dz) -> (...)."""
    return posteriors.as_q(q).log_density(z)


def log_weights(net, theta, x, z, q, mask=None):
    """The log importance weights log p(x, z) - log q(z) at z: (...). Their mean over z ~ q is the
    ELBO; the log of their mean is the importance-weighted bound."""
    return log_joint(net, theta, x, z, mask) - log_q(q, z)


def bernoulli_means(net, theta, z):
    """The means sigmoid(logits) of p(x|z): the one place logits become probabilities."""
    return jax.nn.sigmoid(net.decode(theta, z))


def iwae_bound(log_w):
    """log (1/K) sum_k w_k over the leading axis (K, ...) -> (...) (Burda et al. 2016, eq. 8).
    log_w: log importance weights (K, ...)."""
    return jax.nn.logsumexp(log_w, axis=0) - jnp.log(log_w.shape[0])


# ---- objectives: (key, net, params, x (B, D), num_samples) -> per-image estimates (B,) ----------


def sampled_log_weights(key, net, theta, x, q, num_samples, mask=None):
    """log p(x, z) - log q(z) at num_samples reparameterized z ~ q: q (..., Dz) -> (S, ...). The one place
    the objectives draw z, so the ELBO and the IWAE bound of a key see the same draws."""
    q = posteriors.as_q(q)
    z, log_q_z = q.sample(key, (num_samples,))  # (S, ..., Dz), (S, ...)
    # Where q has a density, log q is taken from z after the joint, the order the compiled programs of the default
    # family always had (another order moves the trained parameters' last bits); a flow gives its own.
    return log_weights(net, theta, x, z, q, mask) if q.has_density else log_joint(net, theta, x, z, mask) - log_q_z


def elbo_of(key, net, theta, x, q, num_samples, mask=None):
    """The ELBO of any q (such as (mean, log_std)), estimated by the mean of log p(x, z) - log q(z) over
    num_samples reparameterized z ~ q: q (..., Dz) -> (...). With a mask, of the observed pixels."""
    return jnp.mean(sampled_log_weights(key, net, theta, x, q, num_samples, mask), axis=0)


def elbo_per_image(key, net, params, x, num_samples=1, kl_weight=None):
    """The assignment's estimator: elbo_of the encoder's q(z|x) (Kingma & Welling 2013, eq. 6),
    unbiased for each image's ELBO: (B, D) -> (B,). kl_weight b (a KL warm-up): the mean of
    log p(x|z) + b (log p(z) - log q(z)) instead, the same draws; None is b = 1 as written above."""
    q = net.encode(params["encoder"], x)
    if kl_weight is None:
        return elbo_of(key, net, generative(net, params), x, q, num_samples)
    z, log_q_z = q.sample(key, (num_samples,))  # (S, B, Dz), (S, B)
    theta = generative(net, params)
    log_w = log_likelihood(net, theta, x, z) + kl_weight * (
        log_p_z(net, theta, z) - (log_q(q, z) if q.has_density else log_q_z))  # (S, B), log q as in sampled_log_weights
    return jnp.mean(log_w, axis=0)


def elbo_analytic_kl_per_image(key, net, params, x, num_samples=1, kl_weight=None):
    """log p(x|z) at z ~ q minus the closed-form KL(q || p(z)) (Kingma & Welling 2013, eq. 10 and
    Appendix B): the same expectation as elbo_per_image with lower variance. kl_weight: the KL times it."""
    q = net.encode(params["encoder"], x)  # (B, Dz) each
    z, _ = q.sample(key, (num_samples,))  # (S, B, Dz)
    expected_log_likelihood = jnp.mean(log_likelihood(net, generative(net, params), x, z), axis=0)  # (B,)
    kl = q.kl_to_prior()  # (B,)
    return expected_log_likelihood - (kl if kl_weight is None else kl_weight * kl)


def iwae_per_image(key, net, params, x, num_samples=1):
    """The importance-weighted bound of Burda, Grosse & Salakhutdinov (2016, eq. 8) with K =
    num_samples reparameterized z ~ q(z|x): log (1/K) sum_k w_k, (B, D) -> (B,). The same draws as
    elbo_per_image: at K = 1 both are log w of one z, number for number."""
    q = net.encode(params["encoder"], x)  # (B, Dz) each
    return iwae_bound(sampled_log_weights(key, net, generative(net, params), x, q, num_samples))  # of (K, B)


def sample(key, net, theta, latent_dim, n):
    """Ancestral samples z ~ p(z), x ~ p(x|z): (z (n, Dz), Bernoulli means (n, D), binary x (n, D)); theta:
    generative(net, params), the model's prior's parameters with the decoder's."""
    z_key, x_key = jax.random.split(key)
    z = net.prior.sample(z_key, net, theta, n, latent_dim)
    means = bernoulli_means(net, theta, z)
    return z, means, densities.sample_bernoulli(x_key, means)


# What training maximizes, by name (Config.objective): (key, net, params, x (B, D), num_samples)
# -> per-image estimates (B,); the ELBOs also take kl_weight (Config.kl_warmup). Here, below the Config
# that checks a name against it.
OBJECTIVES = {
    "elbo": elbo_per_image,  # the assignment's single-sample estimator (the default)
    "elbo-analytic-kl": elbo_analytic_kl_per_image,
    "iwae": iwae_per_image,  # Burda et al. (2016); K = num_samples (--k)
}
