import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import special, stats

from aevb.model import densities


def test_factorized_gaussian_matches_scipy(rng):
    mean, log_std, z = rng.normal(size=(3, 50, 4))
    expected = stats.norm.logpdf(z, mean, np.exp(log_std)).sum(axis=-1)
    got = densities.factorized_gaussian_log_density(jnp.asarray(mean), jnp.asarray(log_std), jnp.asarray(z))
    assert got.shape == (50,)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)


def test_factorized_gaussian_matches_scipy_multivariate(rng):
    mean, log_std, z = rng.normal(size=(3, 2))
    expected = stats.multivariate_normal(mean, np.diag(np.exp(2 * log_std))).logpdf(z)
    got = densities.factorized_gaussian_log_density(mean[None], log_std[None], z[None])
    np.testing.assert_allclose(got, [expected], rtol=1e-5)


def test_factorized_gaussian_extreme_scales():
    # std of e^-20 and e^+20, far tails: finite and equal to scipy in float64.
    mean = np.array([[0.0, 3.0]])
    log_std = np.array([[-20.0, 20.0]])
    z = np.array([[1e-8, -1e8]])
    expected = stats.norm.logpdf(z, mean, np.exp(log_std)).sum()
    got = densities.factorized_gaussian_log_density(jnp.asarray(mean), jnp.asarray(log_std), jnp.asarray(z))
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, [expected], rtol=1e-5)


def test_standard_normal_keeps_leading_axes(rng):
    z = rng.normal(size=(3, 5, 2))
    got = densities.standard_normal_log_density(jnp.asarray(z))
    assert got.shape == (3, 5)
    np.testing.assert_allclose(got, stats.norm.logpdf(z).sum(-1), rtol=1e-5)


def test_bernoulli_matches_scipy(rng):
    logits = rng.normal(scale=5, size=(20, 784))
    x = (rng.uniform(size=(20, 784)) < 0.4).astype(np.float32)
    expected = stats.bernoulli.logpmf(x, special.expit(logits))
    got = densities.bernoulli_log_density(jnp.asarray(logits, jnp.float32), jnp.asarray(x))
    assert got.shape == (20, 784)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("magnitude", [30.0, 1e4, 1e9, 1e30])
def test_bernoulli_stable_at_extreme_logits(magnitude):
    logits = jnp.array([[magnitude, magnitude, -magnitude, -magnitude]], jnp.float32)
    x = jnp.array([[1.0, 0.0, 1.0, 0.0]])
    got = np.asarray(densities.bernoulli_log_density(logits, x), np.float64)[0]
    assert np.isfinite(got).all()
    # log sigmoid(a) = -log1p(exp(-a)); in float64 these are exact references.
    right = -np.log1p(np.exp(-np.float64(magnitude)))
    wrong = -np.float64(np.float32(magnitude)) - np.log1p(np.exp(-np.float64(magnitude)))
    np.testing.assert_allclose(got, [right, wrong, wrong, right], rtol=1e-6, atol=0)


def test_bernoulli_keeps_precision_of_confident_pixels():
    # A correct pixel at logit 30 costs exp(-30) ~ 9.4e-14 nats, which x*l - softplus(l) rounds to 0.
    got = densities.bernoulli_log_density(jnp.array([30.0]), jnp.array([1.0]))
    np.testing.assert_allclose(got, [-np.exp(-30.0)], rtol=1e-5)


def test_gaussian_kl_matches_numerical_integration(rng):
    mean, log_std = np.array([0.7, -1.2]), np.array([-0.5, 0.3])
    grid = np.linspace(-12, 12, 20001)
    total = 0.0
    for m, s in zip(mean, np.exp(log_std)):
        q = stats.norm.pdf(grid, m, s)
        total += np.trapezoid(q * (stats.norm.logpdf(grid, m, s) - stats.norm.logpdf(grid)), grid)
    got = densities.gaussian_kl_to_standard_normal(jnp.asarray(mean[None]), jnp.asarray(log_std[None]))
    np.testing.assert_allclose(got, [total], rtol=1e-5)


@settings(max_examples=25, deadline=None)
@given(hnp.arrays(np.float32, (6, 3), elements=st.floats(-50, 50, width=32)),
       hnp.arrays(np.float32, (6, 3), elements=st.floats(-5, 5, width=32)),
       hnp.arrays(np.float32, (6, 3), elements=st.floats(-50, 50, width=32)))
def test_batch_equals_per_example(mean, log_std, z):
    batch = densities.factorized_gaussian_log_density(mean, log_std, z)
    single = [densities.factorized_gaussian_log_density(mean[i : i + 1], log_std[i : i + 1], z[i : i + 1])[0]
              for i in range(6)]
    np.testing.assert_allclose(batch, single, rtol=1e-6)
    x = (z > 0).astype(np.float32)
    batch = densities.bernoulli_log_density(mean, x)
    single = [densities.bernoulli_log_density(mean[i : i + 1], x[i : i + 1])[0] for i in range(6)]
    np.testing.assert_allclose(batch, np.stack(single), rtol=1e-6)


def test_sample_diag_gaussian_distribution():
    mean, log_std = jnp.array([[1.5, -2.0]]), jnp.array([[0.5, -1.0]])
    shape = (200000, 2)
    z = densities.sample_diag_gaussian(jax.random.PRNGKey(0), jnp.broadcast_to(mean, shape),
                                       jnp.broadcast_to(log_std, shape))
    z = np.asarray(z, np.float64)
    for d in range(2):
        result = stats.kstest(z[:, d], stats.norm(float(mean[0, d]), float(np.exp(log_std[0, d]))).cdf)
        assert result.pvalue > 1e-3


def test_sample_diag_gaussian_is_reparameterized():
    # dz/dmean = 1 and dz/dlog_std = exp(log_std) * eps = z - mean.
    key = jax.random.PRNGKey(3)
    z_of = lambda m, s: densities.sample_diag_gaussian(key, m, s).sum()
    g_mean, g_log_std = jax.grad(z_of, argnums=(0, 1))(jnp.array([0.3]), jnp.array([0.2]))
    z = densities.sample_diag_gaussian(key, jnp.array([0.3]), jnp.array([0.2]))
    np.testing.assert_allclose(g_mean, [1.0])
    np.testing.assert_allclose(g_log_std, z - 0.3, rtol=1e-6)


def test_sample_bernoulli_frequencies():
    probs = jnp.array([0.0, 0.01, 0.3, 0.5, 0.97, 1.0])
    n = 100000
    draws = densities.sample_bernoulli(jax.random.PRNGKey(1), jnp.broadcast_to(probs, (n, 6)))
    draws = np.asarray(draws)
    assert set(np.unique(draws)) <= {0.0, 1.0}
    counts = draws.sum(axis=0)
    for p, count in zip(np.asarray(probs, np.float64), counts):
        # Two-sided binomial test against scipy's exact distribution.
        assert stats.binomtest(int(count), n, p).pvalue > 1e-4 if 0 < p < 1 else count == n * p


def test_uniform_permutation_is_a_permutation():
    perm = np.asarray(densities.uniform_permutation(jax.random.PRNGKey(0), 1000))
    assert sorted(perm.tolist()) == list(range(1000))
    assert not np.array_equal(perm, np.arange(1000))
