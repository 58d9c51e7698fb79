import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

from aevb.config import Config
from aevb.evaluation import answers, partial
from aevb.model import networks
from aevb.views import completion_plots

NET = networks.get("mlp")
SHAPE = (28, 28)


@pytest.fixture(scope="module")
def params():
    return NET.init(jax.random.PRNGKey(3), SHAPE[0] * SHAPE[1], Config(latent_dim=2, hidden_dim=40))


@pytest.fixture(scope="module")
def image():
    return (np.random.default_rng(2).uniform(size=SHAPE[0] * SHAPE[1]) < 0.3).astype(np.float32)


@pytest.fixture(scope="module")
def grid(params, image):
    """A 2-D grid of z with, for each z, log p(x_d | z) of every pixel in float64: (zs, per_pixel, cell area)."""
    axis = np.linspace(-6.0, 6.0, 201)
    zs = np.stack([a.ravel() for a in np.meshgrid(axis, axis, indexing="ij")], -1)
    logits = np.asarray(NET.decode(params["decoder"], zs.astype(np.float32)), np.float64)
    per_pixel = image * special.log_expit(logits) + (1 - image) * special.log_expit(-logits)  # log Bernoulli
    return zs, per_pixel, (axis[1] - axis[0]) ** 2


def _posterior(grid, mask):
    """p(z | the pixels in mask) on the grid: (weights, log evidence log p(those pixels))."""
    zs, per_pixel, area = grid
    log_post = per_pixel[:, mask].sum(-1) + stats.norm.logpdf(zs).sum(-1)
    return np.exp(log_post - special.logsumexp(log_post)), special.logsumexp(log_post) + np.log(area)


@pytest.mark.parametrize("shape", [(28, 28), (5, 7)])
def test_masks(shape):
    rows, cols = np.divmod(np.arange(shape[0] * shape[1]), shape[1])
    top = partial.make_mask("top", shape)
    np.testing.assert_array_equal(top, rows < shape[0] // 2)
    np.testing.assert_array_equal(partial.make_mask("bottom", shape), ~top)
    np.testing.assert_array_equal(partial.make_mask("left", shape), cols < shape[1] // 2)
    np.testing.assert_array_equal(partial.make_mask("right", shape), ~partial.make_mask("left", shape))
    random = partial.make_mask("random", shape, jax.random.PRNGKey(0))
    assert random.shape == top.shape and random.dtype == bool
    assert abs(random.mean() - 0.5) < 4 * np.sqrt(0.25 / random.size)
    with pytest.raises(ValueError, match="mask is one of"):
        partial.make_mask("diagonal", shape)


def test_svi_rises_and_lands_near_the_brute_force_posterior_mean(params, image, grid):
    theta, mask = params["decoder"], partial.make_mask("top", SHAPE)
    (mean, log_std), trace = partial.fit_q(jax.random.PRNGKey(0), NET, theta, image, mask, 2, steps=400)
    trace = np.asarray(trace)
    assert trace[-40:].mean() > trace[:10].mean() + 1.0
    zs, (w, log_evidence) = grid[0], _posterior(grid, mask)
    post_mean = w @ zs
    post_std = np.sqrt(w @ (zs - post_mean) ** 2)
    assert np.all(np.abs(np.asarray(mean) - post_mean) < 0.5 * post_std + 0.02)
    # The ELBO at the optimum is below log p(observed), computed on the same grid.
    assert trace[-40:].mean() <= log_evidence + 0.05


def test_predictive_scores_and_completion(params, image, grid):
    theta, mask = params["decoder"], partial.make_mask("top", SHAPE)
    c = partial.complete(jax.random.PRNGKey(0), NET, params, image, mask, 2, n_completions=5)
    assert c.completions.shape == (5, image.size) and c.hidden_pixels == (~mask).sum()
    np.testing.assert_array_equal(c.completions[:, mask], np.broadcast_to(image[mask], (5, mask.sum())))
    assert c.completions.min() >= 0 and c.completions.max() <= 1
    # The prior predictive of the hidden half against the grid's exact value.
    _, exact = _posterior(grid, ~mask)
    got = partial.predictive_log_likelihood(jax.random.PRNGKey(1), NET, theta, image, ~mask,
                                            (jnp.zeros(2), jnp.zeros(2)), num_samples=20000)
    assert abs(got - exact) < 0.5
    # The SVI predictive of the hidden half against the same integral under the grid posterior.
    w, _ = _posterior(grid, mask)
    exact_posterior_predictive = special.logsumexp(grid[1][:, ~mask].sum(-1), b=w)
    assert abs(exact_posterior_predictive - exact) > 1.5  # the top half tells something about the bottom
    assert abs(c.log_p_hidden_under_q_predictive - exact_posterior_predictive) < 0.5  # q approximates p(z | top)
    numbers = c.summary()
    assert numbers["hidden_pixels"] == 392 and numbers["q_std"] == pytest.approx(np.exp(c.q_log_std).tolist())
    assert numbers["svi_final_elbo"] == pytest.approx(np.mean(c.elbo_trace[-15:]))  # the last 10% of 150 steps
    figure = completion_plots.completion_figure(image.reshape(SHAPE), c.completions.reshape(5, *SHAPE),
                                                mask.reshape(SHAPE), "t")
    assert len([ax for ax in figure.axes if ax.images]) == 6
    figure = completion_plots.posterior_figure(c.grid, c.q_mean, c.q_log_std, c.encoder_mean, c.encoder_log_std, "t")
    assert len(figure.axes[0].get_legend().get_texts()) == 3


def test_pixel_correlation_under_p_bottom_given_top(params, image, grid):
    theta, mask = params["decoder"], partial.make_mask("top", SHAPE)
    i, j, corr, ess = partial.posterior_pixel_correlation(jax.random.PRNGKey(0), NET, theta, image, mask,
                                                          (jnp.zeros(2), jnp.zeros(2)), num_samples=4000)
    assert not mask[i] and not mask[j] and i != j and ess > 10
    # The same correlation from the brute-force grid posterior: exact up to the grid.
    zs, (w, _) = grid[0], _posterior(grid, mask)
    p = special.expit(np.asarray(NET.decode(theta, zs.astype(np.float32)), np.float64))[:, [i, j]]
    mean_p = w @ p
    cov = w @ (p[:, 0] * p[:, 1]) - mean_p[0] * mean_p[1]
    reference = cov / np.sqrt(np.prod(mean_p * (1 - mean_p)))
    assert abs(reference) > 0.01  # not zero: p(bottom | top) does not factorize
    assert abs(corr - reference) < 0.25 * abs(reference)


def test_normal_density_above_one_and_the_answer_texts():
    np.testing.assert_allclose(answers.normal_density_at_mean(0.1), stats.norm(0, 0.1).pdf(0), rtol=1e-5)
    demo = {"index": 7, "pixel_i": 2 * 9 + 4, "pixel_j": 3 * 9, "correlation": 0.25, "effective_sample_size": 99.6}
    texts = {question.split()[0]: reason for question, _, reason in answers.answer_texts(demo, image_width=9)}
    assert "image #7" in texts["(b)"] and "(row 2, col 4) and (row 3, col 0)" in texts["(b)"]
    assert "+0.250" in texts["(b)"] and "effective sample size 100" in texts["(b)"]
    assert "3.9894" in texts["(e)"]
    missing = answers.answer_texts(None, 9, "not computed")
    assert missing[1][2].endswith("not computed") and len(missing) == len(answers.ANSWERS)
