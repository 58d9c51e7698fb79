import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpy.polynomial.hermite_e import hermegauss
from scipy import special, stats

from aevb import densities, evaluate, model


@pytest.fixture(scope="module")
def params():
    # A random model with small hidden layers: the numbers are exact properties, not quality.
    return model.init_params(jax.random.PRNGKey(0), latent_dim=2, hidden_dim=30)


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(1)
    return (rng.uniform(size=(5, 784)) < 0.2).astype(np.float32)


def _numpy_decoder_logits(theta, z):
    t = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), theta)
    hidden = np.tanh(z @ t["hidden"]["weight"] + t["hidden"]["bias"])
    return hidden @ t["out"]["weight"] + t["out"]["bias"]


def test_shapes(params, images):
    phi, theta = params["encoder"], params["decoder"]
    mean, log_std = model.encoder(phi, images)
    assert mean.shape == log_std.shape == (5, 2)
    assert model.decoder(theta, mean).shape == (5, 784)
    z = jnp.zeros((7, 5, 2))  # (K, B, Dz)
    assert model.joint_log_density(theta, images, z).shape == (7, 5)
    assert model.log_q((mean, log_std), z).shape == (7, 5)


def test_log_likelihood_matches_scipy(params, images, rng):
    theta = params["decoder"]
    z = rng.normal(size=(5, 2)).astype(np.float32)
    logits = _numpy_decoder_logits(theta, z.astype(np.float64))
    expected = stats.bernoulli.logpmf(images, special.expit(logits)).sum(axis=-1)
    np.testing.assert_allclose(model.log_likelihood(theta, images, z), expected, rtol=1e-4)
    expected_joint = expected + stats.multivariate_normal(np.zeros(2), np.eye(2)).logpdf(z)
    np.testing.assert_allclose(model.joint_log_density(theta, images, z), expected_joint, rtol=1e-4)


def test_batch_equals_per_example(params, images, rng):
    theta = params["decoder"]
    z = rng.normal(size=(5, 2)).astype(np.float32)
    batch = model.joint_log_density(theta, images, z)
    single = [model.joint_log_density(theta, images[i], z[i]) for i in range(5)]
    np.testing.assert_allclose(batch, single, rtol=1e-5)
    mean, log_std = model.encoder(params["encoder"], images)
    single_mean = np.stack([model.encoder(params["encoder"], images[i])[0] for i in range(5)])
    np.testing.assert_allclose(mean, single_mean, rtol=1e-5, atol=1e-6)


def _quadrature_elbo(params, x, order=40):
    """E_q[log p(x|z)] - KL(q||p) by Gauss-Hermite quadrature in 2-D: an independent reference."""
    mean, log_std = (np.asarray(a, np.float64)[0] for a in model.encoder(params["encoder"], x[None]))
    nodes, weights = hermegauss(order)
    weights = weights / weights.sum()
    e1, e2 = np.meshgrid(nodes, nodes, indexing="ij")
    z = mean + np.exp(log_std) * np.stack([e1.ravel(), e2.ravel()], axis=-1)
    w = np.outer(weights, weights).ravel()
    log_lik = stats.bernoulli.logpmf(x, special.expit(_numpy_decoder_logits(params["decoder"], z))).sum(-1)
    kl = 0.5 * np.sum(mean**2 + np.exp(2 * log_std) - 1 - 2 * log_std)
    return np.sum(w * log_lik) - kl


@pytest.mark.parametrize("kl", ["mc", "analytic"])
def test_elbo_estimator_is_unbiased(params, images, kl):
    x = images[:1]
    exact = _quadrature_elbo(params, images[0])
    draws = np.asarray(model.elbo_per_image(jax.random.PRNGKey(5), params["encoder"], params["decoder"], x,
                                            num_samples=20000, kl=kl), np.float64)
    # elbo_per_image averages the 20000 draws; their spread gives the standard error.
    single = np.asarray(jax.vmap(lambda k: model.elbo_per_image(k, params["encoder"], params["decoder"], x, 1, kl))(
        jax.random.split(jax.random.PRNGKey(6), 20000)))[:, 0]
    standard_error = single.std() / np.sqrt(single.size)
    assert abs(single.mean() - exact) < 4 * standard_error + 1e-3
    assert abs(draws[0] - exact) < 4 * standard_error + 1e-3


def test_elbo_is_batch_mean(params, images):
    key = jax.random.PRNGKey(2)
    per_image = model.elbo_per_image(key, params["encoder"], params["decoder"], images)
    np.testing.assert_allclose(model.elbo(key, params["encoder"], params["decoder"], images), per_image.mean(),
                               rtol=1e-6)
    np.testing.assert_allclose(model.loss(params, images, key), -per_image.mean(), rtol=1e-6)


def _grid_log_marginal(params, x, half_width=7.0, n=281):
    """log p(x) = log of the integral of p(x|z) p(z) over z, by brute force on a 2-D grid."""
    axis = np.linspace(-half_width, half_width, n)
    z1, z2 = np.meshgrid(axis, axis, indexing="ij")
    z = np.stack([z1.ravel(), z2.ravel()], -1)
    logits = _numpy_decoder_logits(params["decoder"], z)
    log_joint = (x * special.log_expit(logits) + (1 - x) * special.log_expit(-logits)).sum(-1)
    log_joint += stats.norm.logpdf(z).sum(-1)
    return special.logsumexp(log_joint) + 2 * np.log(axis[1] - axis[0])


def test_iwae_bound_below_log_marginal_and_rising_with_k(params, images):
    x = images[:3]
    log_px = np.array([_grid_log_marginal(params, xi) for xi in x])
    elbo = np.asarray(evaluate.elbo_per_image(params, x, num_samples=5000))
    # E[bound_K] rises with K towards log p(x) (Burda et al. 2016, Theorem 1). A single estimate
    # is random and may land above log p(x), so compare means over 20 keys, with their errors.
    runs = 20
    repeats = {k: np.stack([np.asarray(evaluate.iwae_per_image(params, x, k, key=jax.random.PRNGKey(r)))
                            for r in range(runs)]) for k in (1, 10, 100, 1000)}
    for small, large in [(1, 10), (10, 100), (100, 1000)]:
        difference = repeats[large] - repeats[small]  # (runs, 3)
        assert np.all(difference.mean(axis=0) > 2 * difference.std(axis=0) / np.sqrt(runs))
    standard_error = {k: r.std(axis=0) / np.sqrt(runs) for k, r in repeats.items()}
    assert np.all(np.abs(repeats[1].mean(axis=0) - elbo) < 4 * standard_error[1])  # K=1 is the ELBO
    assert np.all(repeats[1000].mean(axis=0) <= log_px + 4 * standard_error[1000])
    assert np.all(log_px - repeats[1000].mean(axis=0) < 0.05 * (log_px - elbo))


def test_iwae_chunks_equal_one_logsumexp(params, images):
    # K = 250 with chunks of 100: the last chunk is masked; compare with one direct log-sum-exp.
    x, key, k, chunk = jnp.asarray(images[:2]), jax.random.PRNGKey(9), 250, 100
    got = evaluate.iwae_chunk(params, x, key, k, chunk)
    mean, log_std = model.encoder(params["encoder"], x)
    shape = (chunk,) + mean.shape
    z = jnp.concatenate([densities.sample_diag_gaussian(jax.random.fold_in(key, c), jnp.broadcast_to(mean, shape),
                                                        jnp.broadcast_to(log_std, shape)) for c in range(3)])[:k]
    log_w = model.joint_log_density(params["decoder"], x, z) - model.log_q(
        (jnp.broadcast_to(mean, z.shape), jnp.broadcast_to(log_std, z.shape)), z)
    expected = special.logsumexp(np.asarray(log_w, np.float64), axis=0) - np.log(k)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
