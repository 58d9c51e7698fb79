import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import float64_log_joint, float64_tree
from numpy.polynomial.hermite_e import hermegauss
from scipy import special, stats

from aevb.config import Config
from aevb.evaluation import bounds, gaps
from aevb.model import densities, networks, probability

D = 784  # pixels (the model takes any number; the synthetic tests use 144)
NET = networks.get("mlp")


@pytest.fixture(scope="module")
def params():
    # A random model with small hidden layers: the numbers are exact properties, not quality.
    return NET.init(jax.random.PRNGKey(0), D, Config(latent_dim=2, hidden_dim=30))


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(1)
    return (rng.uniform(size=(5, D)) < 0.2).astype(np.float32)


def _numpy_decoder_logits(theta, z):
    t = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), theta)
    hidden = np.tanh(z @ t["hidden"]["weight"] + t["hidden"]["bias"])
    return hidden @ t["out"]["weight"] + t["out"]["bias"]


def _numpy_log_likelihood(theta, x, z):
    return stats.bernoulli.logpmf(x, special.expit(_numpy_decoder_logits(theta, np.asarray(z, np.float64))))


def test_shapes(params, images):
    mean, log_std = NET.encode(params["encoder"], images)
    assert mean.shape == log_std.shape == (5, 2)
    assert NET.decode(params["decoder"], mean).shape == (5, D)
    z = jnp.zeros((7, 5, 2))  # (K, B, Dz)
    assert probability.log_joint(NET, params["decoder"], images, z).shape == (7, 5)
    assert probability.log_weights(NET, params["decoder"], images, z, (mean, log_std)).shape == (7, 5)


def test_log_likelihood_joint_and_weights_match_scipy(params, images, rng):
    theta = params["decoder"]
    z = rng.normal(size=(5, 2)).astype(np.float32)
    expected = _numpy_log_likelihood(theta, images, z).sum(axis=-1)
    np.testing.assert_allclose(probability.log_likelihood(NET, theta, images, z), expected, rtol=1e-4)
    expected_joint = expected + stats.multivariate_normal(np.zeros(2), np.eye(2)).logpdf(z)
    np.testing.assert_allclose(probability.log_joint(NET, theta, images, z), expected_joint, rtol=1e-4)
    mean, log_std = rng.normal(size=(2, 5, 2)).astype(np.float32)
    expected_q = stats.norm.logpdf(z, mean, np.exp(log_std)).sum(-1)
    np.testing.assert_allclose(probability.log_weights(NET, theta, images, z, (mean, log_std)),
                               expected_joint - expected_q, rtol=1e-4)


@pytest.mark.parametrize("kind", ["half", "random", "none", "all"])
def test_masked_likelihood_sums_the_observed_pixels_and_ignores_the_rest(params, images, rng, kind):
    theta = params["decoder"]
    mask = {"half": np.arange(D) < D // 2, "random": rng.uniform(size=D) < 0.3, "none": np.zeros(D, bool),
            "all": np.ones(D, bool)}[kind]
    z = rng.normal(size=(6, 2)).astype(np.float32)  # six zs scored against one image
    scrambled = images[0].copy()
    scrambled[~mask] = np.nan  # whatever the hidden pixels hold
    got = probability.log_likelihood(NET, theta, scrambled, z, mask)
    assert got.shape == (6,) and np.isfinite(got).all()
    expected = _numpy_log_likelihood(theta, images[0], z)[:, mask].sum(-1)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_batch_equals_per_example(params, images, rng):
    theta = params["decoder"]
    z = rng.normal(size=(5, 2)).astype(np.float32)
    batch = probability.log_joint(NET, theta, images, z)
    single = [probability.log_joint(NET, theta, images[i], z[i]) for i in range(5)]
    np.testing.assert_allclose(batch, single, rtol=1e-5)
    mean, _ = NET.encode(params["encoder"], images)
    single_mean = np.stack([NET.encode(params["encoder"], images[i])[0] for i in range(5)])
    np.testing.assert_allclose(mean, single_mean, rtol=1e-5, atol=1e-6)


def test_bernoulli_means_are_the_sigmoid_of_the_logits(params, rng):
    z = rng.normal(size=(4, 2))
    means = probability.bernoulli_means(NET, params["decoder"], z.astype(np.float32))
    np.testing.assert_allclose(means, special.expit(_numpy_decoder_logits(params["decoder"], z)), rtol=1e-5)


def _quadrature_elbo(params, x, order=40):
    """E_q[log p(x|z)] - KL(q||p) by Gauss-Hermite quadrature in 2-D: an independent reference."""
    mean, log_std = (np.asarray(a, np.float64)[0] for a in NET.encode(params["encoder"], x[None]))
    nodes, weights = hermegauss(order)
    weights = weights / weights.sum()
    e1, e2 = np.meshgrid(nodes, nodes, indexing="ij")
    z = mean + np.exp(log_std) * np.stack([e1.ravel(), e2.ravel()], axis=-1)
    w = np.outer(weights, weights).ravel()
    log_lik = _numpy_log_likelihood(params["decoder"], x, z).sum(-1)
    kl = 0.5 * np.sum(mean**2 + np.exp(2 * log_std) - 1 - 2 * log_std)
    return np.sum(w * log_lik) - kl


@pytest.mark.parametrize("objective", [probability.elbo_per_image, probability.elbo_analytic_kl_per_image])
def test_elbo_estimators_are_unbiased(params, images, objective):
    x = images[:1]
    exact = _quadrature_elbo(params, images[0])
    single = np.asarray(jax.vmap(lambda k: objective(k, NET, params, x, 1))(
        jax.random.split(jax.random.PRNGKey(6), 20000)), np.float64)[:, 0]
    standard_error = single.std() / np.sqrt(single.size)
    assert abs(single.mean() - exact) < 4 * standard_error + 1e-3
    averaged = float(objective(jax.random.PRNGKey(5), NET, params, x, 20000)[0])  # num_samples averages draws
    assert abs(averaged - exact) < 4 * standard_error + 1e-3


def test_iwae_bound_is_log_mean_exp(rng):
    log_w = rng.normal(scale=30, size=(50, 3))
    np.testing.assert_allclose(probability.iwae_bound(jnp.asarray(log_w, jnp.float32)),
                               special.logsumexp(log_w, axis=0) - np.log(50), rtol=1e-5)


def _grid_log_marginal(params, x, half_width=7.0, n=281):
    """log p(x) of each image x (N, D) = log of the integral of p(x|z) p(z) over z, by brute force on a 2-D grid:
    (N,). The decoder runs once on the grid (P points), shared by the images."""
    axis = np.linspace(-half_width, half_width, n)
    z1, z2 = np.meshgrid(axis, axis, indexing="ij")
    z = np.stack([z1.ravel(), z2.ravel()], -1)  # (P, 2)
    log_joint = float64_log_joint(float64_tree(params["decoder"]), np.asarray(x, np.float64), z)  # (N, P)
    return special.logsumexp(log_joint, axis=1) + 2 * np.log(axis[1] - axis[0])


def test_iwae_bound_below_log_marginal_and_rising_with_k(params, images):
    x = images[:3]
    log_px = _grid_log_marginal(params, x)
    elbo = np.asarray(bounds.elbo_per_image(NET, params, x, num_samples=5000))
    # E[bound_K] rises with K towards log p(x) (Burda et al. 2016, Theorem 1). A single estimate
    # is random and may land above log p(x), so compare means over 20 keys, with their errors.
    runs = 20
    repeats = {k: np.stack([np.asarray(bounds.iwae_per_image(NET, params, x, k, key=jax.random.PRNGKey(r)))
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
    got = bounds.iwae_chunk(NET, params, x, key, k, chunk)
    q = NET.encode(params["encoder"], x)
    z = jnp.concatenate([densities.sample_diag_gaussian(jax.random.fold_in(key, c), *q, (chunk,))
                         for c in range(3)])[:k]
    log_w = np.asarray(probability.log_joint(NET, params["decoder"], x, z), np.float64) - stats.norm.logpdf(
        np.asarray(z), np.asarray(q[0]), np.exp(np.asarray(q[1]))).sum(-1)
    np.testing.assert_allclose(got, special.logsumexp(log_w, axis=0) - np.log(k), rtol=1e-5)


def test_bounds_against_k_are_prefixes_of_one_set_of_draws(params, images, rng):
    """iwae_prefixes at K = 1, 10 (inside the first chunk of 100), 100 and 300 (whole chunks): each is
    scipy's log-mean-exp of the first K of the draws iwae_chunk makes for K = 300, and at the whole
    chunks iwae_chunk's own numbers bit for bit (q and the defensive proposal); over chunks of images
    iwae_prefixes_per_image gives iwae_per_image's numbers."""
    x, key, ks = jnp.asarray(images[:2]), jax.random.PRNGKey(9), (1, 10, 100, 300)
    got = np.asarray(gaps.iwae_prefixes(NET, params, x, key, ks))  # (B, len(ks))
    q = NET.encode(params["encoder"], x)
    z = jnp.concatenate([densities.sample_diag_gaussian(jax.random.fold_in(key, c), *q, (100,)) for c in range(3)])
    log_w = np.asarray(probability.log_joint(NET, params["decoder"], x, z), np.float64) - stats.norm.logpdf(
        np.asarray(z), np.asarray(q[0]), np.exp(np.asarray(q[1]))).sum(-1)  # (300, B)
    for column, k in enumerate(ks):
        np.testing.assert_allclose(got[:, column], special.logsumexp(log_w[:k], axis=0) - np.log(k), rtol=1e-5)
    for defensive in (False, True):
        prefixes = np.asarray(gaps.iwae_prefixes(NET, params, x, key, ks, defensive))
        for column, k in ((2, 100), (3, 300)):
            alone = bounds.iwae_chunk(NET, params, x, key, k, 100, defensive)
            np.testing.assert_array_equal(prefixes[:, column], alone)
    many = (rng.uniform(size=(250, D)) < 0.3).astype(np.float32)  # two whole chunks of images and a rest of 50
    np.testing.assert_array_equal(gaps.iwae_prefixes_per_image(NET, params, many, (10, 200))[:, 1],
                                  bounds.iwae_per_image(NET, params, many, 200))
    with pytest.raises(ValueError, match="multiple"):
        gaps.check_prefixes((10, 150))


def test_bounds_against_k_continue_the_iwae_bounds_draws(params, rng):
    """Given iwae_per_image's bounds at K = 200 (known), the prefixes up to 200 are the same bit for bit
    and K = 400 continues the same draws: with the known bound raised by 5 nats, the K = 400 bound is
    the float64 log-mean-exp of the raised first 200 and the unchanged last 200 (over two whole
    chunks of images and a rest of 50); a known K with a whole chunk between 100 and it is refused."""
    many, ks = (rng.uniform(size=(250, D)) < 0.3).astype(np.float32), (1, 10, 100, 200, 400)
    alone = gaps.iwae_prefixes_per_image(NET, params, many, ks).astype(np.float64)  # (N, len(ks))
    at_200 = bounds.iwae_per_image(NET, params, many, 200)
    shared = gaps.iwae_prefixes_per_image(NET, params, many, ks, known=(200, at_200))
    np.testing.assert_array_equal(shared[:, :4], alone[:, :4].astype(np.float32))
    np.testing.assert_allclose(shared[:, 4], alone[:, 4], rtol=1e-6)
    raised = gaps.iwae_prefixes_per_image(NET, params, many, ks, known=(200, at_200 + 5.0)).astype(np.float64)
    log_sums = alone[:, 3:] + np.log([200, 400])  # log-sum-exp of the first 200 and of all 400 draws
    last_200 = log_sums[:, 1] + np.log1p(-np.exp(log_sums[:, 0] - log_sums[:, 1]))
    np.testing.assert_allclose(raised[:, 4], np.logaddexp(log_sums[:, 0] + 5.0, last_200) - np.log(400), rtol=1e-5)
    assert np.all(raised[:, 4] > alone[:, 4])  # the known bound counts
    with pytest.raises(ValueError, match="between"):
        gaps.iwae_prefixes_per_image(NET, params, many[:100], (100, 200, 300), known=(300, at_200[:100]))


@pytest.mark.parametrize(("draws", "block_rows", "per_block"), [(12, 6, 2), (12, 9, 3), (7, 6, 1), (12, 100, 12)])
def test_log_weights_in_row_blocks_are_those_of_one_call(params, images, monkeypatch, draws, block_rows, per_block):
    """in_row_blocks evaluates draws (C, B, Dz) a few draws at a time: with 3 images and blocks of
    at most block_rows rows, per_block draws per block (a divisor of C: 7 draws, a prime, go one at a
    time; 12 draws in 36 rows fit one block), each draw's log weight scipy's and the blocks in order."""
    monkeypatch.setattr(bounds, "BLOCK_ROWS", block_rows)
    x = jnp.asarray(images[:3])
    q = NET.encode(params["encoder"], x)
    z = densities.sample_diag_gaussian(jax.random.PRNGKey(4), *q, (draws,))  # (C, 3, Dz)
    seen = []

    def log_w(zc):
        seen.append(zc.shape[0])
        return probability.log_weights(NET, params["decoder"], x, zc, q)

    got = np.asarray(jax.jit(lambda z: bounds.in_row_blocks(log_w, z))(z))
    assert seen == [per_block]  # traced once, for a block of per_block draws
    expected = _numpy_log_likelihood(params["decoder"], images[:3], np.asarray(z)).sum(-1) + stats.norm.logpdf(
        np.asarray(z)).sum(-1) - stats.norm.logpdf(np.asarray(z), np.asarray(q[0]), np.exp(np.asarray(q[1]))).sum(-1)
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    np.testing.assert_allclose(got, probability.log_weights(NET, params["decoder"], x, z, q), rtol=1e-6)


@pytest.mark.parametrize("block_rows", [2048, 150])
def test_evaluated_elbo_does_not_depend_on_how_images_are_grouped(params, rng, monkeypatch, block_rows):
    # 250 images: two whole chunks in one call and a remainder of 50; image i's estimate must be
    # the one its own chunk gives when evaluated alone (its 6 draws' log weights in blocks of one
    # draw where a block holds 150 rows: the same draws).
    monkeypatch.setattr(bounds, "BLOCK_ROWS", block_rows)
    x = (rng.uniform(size=(250, D)) < 0.3).astype(np.float32)
    all_at_once = bounds.elbo_per_image(NET, params, x, 6)
    for start in (0, 100, 200):
        alone = probability.elbo_per_image(jax.random.fold_in(bounds.EVAL_KEY, start), NET, params,
                                           x[start:start + 100], 6)
        np.testing.assert_allclose(all_at_once[start:start + 100], alone, rtol=1e-5)


def test_ancestral_samples(params):
    z, means, x = probability.sample(jax.random.PRNGKey(0), NET, params["decoder"], 2, 4000)
    assert z.shape == (4000, 2) and means.shape == x.shape == (4000, D)
    assert stats.kstest(np.asarray(z[:, 0]), stats.norm.cdf).pvalue > 1e-3  # z ~ N(0, I)
    np.testing.assert_allclose(means, probability.bernoulli_means(NET, params["decoder"], z), rtol=1e-6)
    # Pixel frequencies match the mean of their Bernoulli means (x ~ p(x|z)), within 5 standard errors.
    frequency, expected = np.asarray(x).mean(0), np.asarray(means).mean(0)
    assert np.all(np.abs(frequency - expected) < 5 * np.sqrt(expected * (1 - expected) / 4000) + 1e-3)


def test_iwae_objective_is_scipy_log_mean_exp_of_the_same_draws(params, images):
    key, x = jax.random.PRNGKey(8), images[:3]
    mean, log_std = NET.encode(params["encoder"], x)
    z = np.asarray(densities.sample_diag_gaussian(key, mean, log_std, (50,)), np.float64)  # (K, B, Dz): the draws
    q = stats.norm.logpdf(z, np.asarray(mean, np.float64), np.exp(np.asarray(log_std, np.float64))).sum(-1)
    log_w = (_numpy_log_likelihood(params["decoder"], x, z).sum(-1) + stats.norm.logpdf(z).sum(-1) - q)  # (K, B)
    expected = special.logsumexp(log_w, axis=0) - np.log(50)
    np.testing.assert_allclose(probability.iwae_per_image(key, NET, params, x, 50), expected, rtol=2e-5)
    # log of a mean >= mean of the logs: the IWAE objective never lies below the ELBO of its own draws.
    assert np.all(expected >= log_w.mean(0))


def test_iwae_at_k_1_is_the_elbo_number_for_number_and_gradient_for_gradient(params, images):
    key, x = jax.random.PRNGKey(9), images[:4]
    np.testing.assert_array_equal(probability.iwae_per_image(key, NET, params, x, 1),
                                  probability.elbo_per_image(key, NET, params, x, 1))
    grads = [jax.grad(lambda p, f=f: f(key, NET, p, x, 1).mean())(params)
             for f in (probability.iwae_per_image, probability.elbo_per_image)]
    for a, b in zip(jax.tree_util.tree_leaves(grads[0]), jax.tree_util.tree_leaves(grads[1]), strict=True):
        np.testing.assert_array_equal(a, b)
