import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

from aevb import model, partial, plots


@pytest.fixture(scope="module")
def theta():
    return model.init_params(jax.random.PRNGKey(3), latent_dim=2, hidden_dim=40)["decoder"]


@pytest.fixture(scope="module")
def image():
    return (np.random.default_rng(2).uniform(size=784) < 0.3).astype(np.float32)


def test_masks():
    top = partial.make_mask("top")
    assert top.sum() == 392 and top[: 14 * 28].all() and not top[14 * 28 :].any()
    np.testing.assert_array_equal(partial.make_mask("bottom"), ~top)
    left = partial.make_mask("left").reshape(28, 28)
    assert left[:, :14].all() and not left[:, 14:].any()
    np.testing.assert_array_equal(partial.make_mask("right"), ~partial.make_mask("left"))
    random = partial.make_mask("random", jax.random.PRNGKey(0))
    assert 300 < random.sum() < 480
    x = np.arange(2 * 784).reshape(2, 784)
    np.testing.assert_array_equal(partial.top_half(x), x[:, :392])
    np.testing.assert_array_equal(partial.top_half(x).reshape(2, 14, 28), x.reshape(2, 28, 28)[:, :14])


def test_full_mask_equals_the_full_likelihood(theta, image):
    zs = jax.random.normal(jax.random.PRNGKey(0), (7, 2))
    everything = np.ones(784, bool)
    np.testing.assert_allclose(partial.log_likelihood_observed(theta, image, zs, everything),
                               model.log_likelihood(theta, image, zs), rtol=1e-6)
    np.testing.assert_allclose(partial.log_joint_observed(theta, image, zs, everything),
                               model.joint_log_density(theta, image, zs), rtol=1e-6)


@pytest.mark.parametrize("kind", ["top", "bottom", "left", "right", "random"])
def test_unobserved_pixels_are_ignored_and_the_sum_is_over_observed(theta, image, kind):
    mask = partial.make_mask(kind, jax.random.PRNGKey(1))
    zs = jax.random.normal(jax.random.PRNGKey(2), (5, 2))
    scrambled = image.copy()
    scrambled[~mask] = np.nan  # whatever the hidden pixels hold
    got = partial.log_joint_observed(theta, scrambled, zs, mask)
    assert got.shape == (5,)
    logits = np.asarray(model.decoder(theta, zs), np.float64)
    reference = stats.bernoulli.logpmf(image, special.expit(logits))[:, mask].sum(-1) + stats.norm.logpdf(
        np.asarray(zs)).sum(-1)
    np.testing.assert_allclose(got, reference, rtol=1e-5)


def test_vectorized_over_zs(theta, image):
    mask = partial.make_mask("top")
    zs = jax.random.normal(jax.random.PRNGKey(5), (6, 2))
    batch = partial.log_joint_observed(theta, image, zs, mask)
    single = [partial.log_joint_observed(theta, image, zs[i : i + 1], mask)[0] for i in range(6)]
    np.testing.assert_allclose(batch, single, rtol=1e-6)


def test_svi_rises_and_lands_near_the_brute_force_posterior_mean(theta, image):
    mask = partial.make_mask("top")
    (mean, log_std), trace = partial.fit_q(jax.random.PRNGKey(0), theta, image, mask, steps=400)
    trace = np.asarray(trace)
    assert trace[-40:].mean() > trace[:10].mean() + 1.0
    # Brute force: the posterior mean and spread on a fine grid.
    axis = np.linspace(-6, 6, 301)
    g1, g2 = np.meshgrid(axis, axis, indexing="ij")
    zs = np.stack([g1.ravel(), g2.ravel()], -1).astype(np.float32)
    log_post = np.asarray(partial.log_joint_observed(theta, image, zs, mask), np.float64)
    w = np.exp(log_post - special.logsumexp(log_post))
    post_mean = w @ zs
    post_std = np.sqrt(w @ (zs - post_mean) ** 2)
    assert np.all(np.abs(np.asarray(mean) - post_mean) < 0.5 * post_std + 0.02)
    # The ELBO at the optimum is below log p(observed), computed on the same grid.
    log_evidence = special.logsumexp(log_post) + 2 * np.log(axis[1] - axis[0])
    assert trace[-40:].mean() <= log_evidence + 0.05


def test_predictive_scores_and_completion(theta, image):
    mask = partial.make_mask("top")
    params = {"decoder": theta, "encoder": model.init_params(jax.random.PRNGKey(3), 2, 40)["encoder"]}
    result = partial.complete(jax.random.PRNGKey(0), params, image, mask, n_completions=5)
    completions = result["completions"]
    assert completions.shape == (5, 784)
    np.testing.assert_array_equal(completions[:, mask], np.broadcast_to(image[mask], (5, mask.sum())))
    assert completions.min() >= 0 and completions.max() <= 1
    # The prior predictive of the hidden half equals its definition, by a direct Monte Carlo sum.
    hidden = ~mask
    z = np.asarray(jax.random.normal(jax.random.PRNGKey(9), (4000, 2)))
    direct = special.logsumexp(stats.bernoulli.logpmf(image, special.expit(
        np.asarray(model.decoder(theta, z), np.float64)))[:, hidden].sum(-1)) - np.log(4000)
    got = partial.predictive_log_likelihood(jax.random.PRNGKey(1), theta, image, hidden, jnp.zeros(2), jnp.zeros(2))
    assert abs(got - direct) < 1.0
    figure = plots.completion_figure(image, completions, mask, "t")
    assert len([ax for ax in figure.axes if ax.images]) == 6
    figure = plots.posterior_figure(result["grid"], result["q_mean"], result["q_log_std"], result["encoder_mean"],
                                    result["encoder_log_std"], "t")
    assert len(figure.axes[0].get_legend().get_texts()) == 3


def test_answers_and_their_demonstrations(theta, image):
    answers = {q.split()[0]: a for q, a, _ in partial.ANSWERS}
    assert answers == {"(a)": True, "(b)": False, "(c)": False, "(d)": False, "(e)": True}
    np.testing.assert_allclose(partial.normal_density_at_mean(0.1), stats.norm(0, 0.1).pdf(0), rtol=1e-5)
    mask = partial.make_mask("top")
    i, j, corr, ess = partial.posterior_pixel_correlation(jax.random.PRNGKey(0), theta, image, mask,
                                                          jnp.zeros(2), jnp.zeros(2), num_samples=4000)
    assert not mask[i] and not mask[j] and i != j and ess > 10
    # The same correlation from the brute-force grid posterior: exact up to the grid.
    axis = np.linspace(-6, 6, 241)
    g1, g2 = np.meshgrid(axis, axis, indexing="ij")
    zs = np.stack([g1.ravel(), g2.ravel()], -1).astype(np.float32)
    log_post = np.asarray(partial.log_joint_observed(theta, image, zs, mask), np.float64)
    w = np.exp(log_post - special.logsumexp(log_post))
    p = special.expit(np.asarray(model.decoder(theta, zs), np.float64))[:, [i, j]]
    mean_p = w @ p
    cov = w @ (p[:, 0] * p[:, 1]) - mean_p[0] * mean_p[1]
    reference = cov / np.sqrt(np.prod(mean_p * (1 - mean_p)))
    assert abs(reference) > 0.01  # not zero: p(bottom | top) does not factorize
    assert abs(corr - reference) < 0.25 * abs(reference)
