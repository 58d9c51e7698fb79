"""The priors p(z) (aevb.model.priors) against independent references: each learned prior's log density against
scipy's in float64, its density integrating to 1 on a grid at Dz = 2, its samples' mean and covariance against the
closed forms, the VampPrior against the mean of the encoder's q at its pseudo-inputs computed image by image in
numpy; a model with a learned prior trained, its exact log p(x) against a float64 grid integral written here and
its bounds below it; the standard prior's model unchanged."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

from aevb.config import Config
from aevb.errors import ConfigError
from aevb.model import densities, networks, priors, probability
from conftest import tiny, trained


def _mixture(key, components=3, latent_dim=2):
    """A mixture prior's parameters drawn at random, weights far from equal."""
    keys = jax.random.split(key, 3)
    return {"logits": 2.0 * jax.random.normal(keys[0], (components,)),
            "mean": 2.0 * jax.random.normal(keys[1], (components, latent_dim)),
            "log_std": 0.5 * jax.random.normal(keys[2], (components, latent_dim))}


def _mixture_reference(prior, z):
    """log p(z) in float64 by scipy: log sum_c w_c N(z; m_c, diag(s_c^2))."""
    logits, mean, log_std = (np.asarray(prior[k], np.float64) for k in ("logits", "mean", "log_std"))
    log_w = logits - logsumexp(logits)
    terms = [log_w[c] + stats.multivariate_normal(mean[c], np.diag(np.exp(2 * log_std[c]))).logpdf(z)
             for c in range(len(log_w))]
    return logsumexp(np.stack(terms), axis=0)


def _vamp_setup(key, components=4, data_dim=12, latent_dim=2):
    net = networks.mlp("tanh")._replace(prior=priors.get(f"vamp:{components}"))
    config = Config(hidden_dim=8, latent_dim=latent_dim)
    params = networks.mlp("tanh").init(key, data_dim, config)
    params["prior"] = priors.get(f"vamp:{components}").init(jax.random.fold_in(key, 1), latent_dim, data_dim)
    return net, params


@pytest.mark.parametrize("latent_dim", [2, 5])
def test_the_mixtures_log_density_is_scipys(latent_dim):
    prior = _mixture(jax.random.PRNGKey(0), components=4, latent_dim=latent_dim)
    theta = {"prior": prior}
    z = 3.0 * np.asarray(jax.random.normal(jax.random.PRNGKey(1), (50, latent_dim)))
    got = np.asarray(priors.get("mixture:4").log_density(None, theta, jnp.asarray(z)), np.float64)
    np.testing.assert_allclose(got, _mixture_reference(prior, z), atol=2e-4, rtol=1e-5)


def _grid_mass(log_density, half_width=12.0, n=601):
    axis = np.linspace(-half_width, half_width, n)
    z = np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    values = np.asarray(log_density(jnp.asarray(z, jnp.float32)), np.float64)
    return np.exp(values).sum() * (axis[1] - axis[0]) ** 2


def test_at_dz_2_each_learned_priors_density_integrates_to_one():
    theta = {"prior": _mixture(jax.random.PRNGKey(2))}
    assert _grid_mass(lambda z: priors.get("mixture:3").log_density(None, theta, z)) == pytest.approx(1.0, abs=2e-3)
    net, params = _vamp_setup(jax.random.PRNGKey(3))
    theta = probability.generative(net, params)
    assert _grid_mass(lambda z: probability.log_p_z(net, theta, z)) == pytest.approx(1.0, abs=2e-3)


def test_the_mixtures_samples_have_its_mean_and_covariance():
    """200 000 draws (component by a uniform against the cumulative weights): their mean and covariance against the
    mixture's closed forms, mean sum_c w_c m_c and sum_c w_c (diag s_c^2 + m_c m_c^T) - mean mean^T."""
    prior = _mixture(jax.random.PRNGKey(4), components=3)
    z = np.asarray(priors.get("mixture:3").sample(jax.random.PRNGKey(5), None, {"prior": prior}, 200_000, 2),
                   np.float64)
    w = np.exp(np.asarray(prior["logits"], np.float64) - logsumexp(np.asarray(prior["logits"], np.float64)))
    m, s2 = np.asarray(prior["mean"], np.float64), np.exp(2 * np.asarray(prior["log_std"], np.float64))
    mean = w @ m
    covariance = sum(w[c] * (np.diag(s2[c]) + np.outer(m[c], m[c])) for c in range(3)) - np.outer(mean, mean)
    standard_errors = np.sqrt(np.diag(covariance) / len(z))
    assert np.all(np.abs(z.mean(0) - mean) < 5 * standard_errors), (z.mean(0), mean)
    np.testing.assert_allclose(np.cov(z.T), covariance, rtol=0.03, atol=0.03)
    # each component drawn as often as its weight says: E_z[responsibility_c(z)] = w_c for z from the mixture
    log_terms = np.stack([np.log(w[c]) + stats.multivariate_normal(m[c], np.diag(s2[c])).logpdf(z) for c in range(3)])
    responsibilities = np.exp(log_terms - logsumexp(log_terms, axis=0))  # (3, N)
    spread = responsibilities.std(axis=1) / np.sqrt(len(z))
    assert np.all(np.abs(responsibilities.mean(axis=1) - w) < 5 * spread + 1e-4), (responsibilities.mean(1), w)


def test_the_vampprior_is_the_mean_of_the_encoders_q_at_its_pseudo_inputs():
    """Computed another way: each pseudo-input encoded alone, its Gaussian's log density by scipy in float64, then
    the log of the mean over pseudo-inputs."""
    net, params = _vamp_setup(jax.random.PRNGKey(6), components=5)
    # Free parameters from -0.5 to 1.5: the pixels outside [0, 1] are held at 0 and 1 (hardtanh), as images are.
    params["prior"]["pseudo_inputs"] = jax.random.uniform(jax.random.PRNGKey(5), (5, 12), minval=-0.5, maxval=1.5)
    z = np.asarray(jax.random.normal(jax.random.PRNGKey(7), (30, 2)), np.float64)
    terms = []
    for u in np.clip(np.asarray(params["prior"]["pseudo_inputs"]), 0.0, 1.0):  # hardtanh(0, 1) of the free ones
        mean, log_std = (np.asarray(a, np.float64)[0] for a in net.encode(params["encoder"], jnp.asarray(u[None])))
        terms.append(stats.multivariate_normal(mean, np.diag(np.exp(2 * log_std))).logpdf(z))
    reference = logsumexp(np.stack(terms), axis=0) - np.log(5)
    got = probability.log_p_z(net, probability.generative(net, params), jnp.asarray(z, jnp.float32))
    np.testing.assert_allclose(np.asarray(got, np.float64), reference, atol=2e-4, rtol=1e-5)


def test_the_vampprior_shares_the_encoder_and_its_gradient_reaches_it():
    net, params = _vamp_setup(jax.random.PRNGKey(8))
    z = jax.random.normal(jax.random.PRNGKey(9), (10, 2))
    grads = jax.grad(lambda p: jnp.sum(probability.log_p_z(net, probability.generative(net, p), z)))(params)
    assert float(jnp.abs(grads["encoder"]["out"]["weight"]).sum()) > 0
    assert float(jnp.abs(grads["prior"]["pseudo_inputs"]).sum()) > 0
    # Past [0, 1] a pseudo-input's pixel is held (hardtanh(0, 1)): its free parameter gets no gradient.
    free = params["prior"]["pseudo_inputs"].at[0, :6].set(-0.3).at[1, :6].set(1.4)
    held = jax.grad(lambda p: jnp.sum(probability.log_p_z(net, probability.generative(net, p), z)))(
        {**params, "prior": {"pseudo_inputs": free}})["prior"]["pseudo_inputs"]
    assert float(jnp.abs(held[:2, :6]).sum()) == 0 and float(jnp.abs(held[:2, 6:]).sum()) > 0
    assert float(jnp.abs(grads["decoder"]["out"]["weight"]).sum()) == 0  # the prior does not use the decoder


def test_prior_names_sizes_and_bad_settings():
    assert Config().prior == "standard" and Config(prior="mixture:007").prior == "mixture:7"
    for bad, words in [("mixture", "needs its components"), ("standard:3", "has no size"), ("gamma:2", "prior is one of"),
                       ("vamp:0", "1 to 10000"), ("vamp:99999", "1 to 10000")]:
        with pytest.raises(ConfigError, match=words):
            Config(prior=bad)
    with pytest.raises(ConfigError, match="elbo-analytic-kl needs KL.*; the mixture:3 prior has none"):
        Config(prior="mixture:3", objective="elbo-analytic-kl")
    with pytest.raises(ConfigError, match="needs q's density at any z; the planar:2 posterior has none"):
        Config(prior="vamp:10", posterior="planar:2")


def test_the_standard_priors_model_has_the_parameters_it_always_had():
    """No "prior" entry, the same keys and draws: generative(net, params) is the decoder's parameters themselves."""
    config = tiny()
    params = config.network.init(jax.random.PRNGKey(0), 144, config)
    assert set(params) == {"encoder", "decoder"}
    assert probability.generative(config.network, params) is params["decoder"]
    learned = tiny(prior="mixture:3").network.init(jax.random.PRNGKey(0), 144, tiny(prior="mixture:3"))
    same = jax.tree_util.tree_map(np.array_equal, {k: learned[k] for k in ("encoder", "decoder")}, params)
    assert all(jax.tree_util.tree_leaves(same))  # the networks' draws do not move for the prior's


@pytest.fixture(scope="module", params=["mixture:3", "vamp:6"])
def prior_run(request, tmp_path_factory):
    return trained(tmp_path_factory, prior=request.param, epochs=2)


def _grid_log_px(run, x, half_width=9.0, n=361):
    """log p(x) = log of the sum over a fine grid of p(x|z) p(z) dz, in float64 numpy from the decoder's logits and
    the prior's log density (this test's own integral, not aevb.evaluation.exact's tiles)."""
    axis = np.linspace(-half_width, half_width, n)
    z = np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    theta = probability.generative(run.net, run.params)
    logits = np.asarray(run.net.decode(theta, jnp.asarray(z, jnp.float32)), np.float64)  # (G, D)
    log_prior = np.asarray(probability.log_p_z(run.net, theta, jnp.asarray(z, jnp.float32)), np.float64)
    log_likelihood = np.asarray(x, np.float64) @ logits.T - np.logaddexp(0.0, logits).sum(-1)  # (N, G)
    return logsumexp(log_likelihood + log_prior, axis=1) + 2 * np.log(axis[1] - axis[0])


def test_a_learned_priors_model_trains_and_its_exact_log_px_is_the_integral(prior_run):
    from aevb.evaluation import bounds, exact

    assert "prior" in prior_run.params  # learned, stored in the checkpoint and read back
    x = np.asarray(prior_run.split.x_test[:12])
    log_px = np.asarray(exact.log_px(prior_run.net, probability.generative(prior_run.net, prior_run.params), x)[0])
    np.testing.assert_allclose(log_px, _grid_log_px(prior_run, x), atol=0.02)
    elbo = np.asarray(bounds.elbo_per_image(prior_run.net, prior_run.params, jnp.asarray(x), 2000), np.float64)
    iwae = np.asarray(bounds.iwae_per_image(prior_run.net, prior_run.params, jnp.asarray(x), 1000), np.float64)
    assert np.all(elbo <= log_px + 0.02) and np.mean(elbo) < np.mean(iwae) <= np.mean(log_px) + 0.02


def test_the_kl_of_the_aggregate_posterior_to_the_prior_is_the_closed_form_where_q_ignores_x():
    """An encoder whose q(z|x) is one Gaussian N(m, diag(s^2)) for every image: the aggregate is that Gaussian, and
    KL(q || N(0, I)) = 1/2 sum(s^2 + m^2 - 1 - 2 log s) (Kingma & Welling 2013, Appendix B), in float64 here."""
    from aevb.evaluation import aggregate

    config = tiny()
    params = config.network.init(jax.random.PRNGKey(0), 144, config)
    m, log_s = np.array([0.7, -1.2]), np.array([-0.4, 0.3])
    out = params["encoder"]["out"]
    params["encoder"]["out"] = {"weight": jnp.zeros_like(out["weight"]), "bias": jnp.asarray(np.r_[m, log_s], jnp.float32)}
    x = np.asarray(jax.random.bernoulli(jax.random.PRNGKey(1), 0.5, (50, 144)), np.float32)
    axis, log_p, log_q, kl, mass = aggregate.on_grid(config.network, params, x)
    s2 = np.exp(2 * log_s)
    assert kl == pytest.approx(0.5 * np.sum(s2 + m**2 - 1 - 2 * log_s), abs=2e-3) and mass == pytest.approx(1, abs=1e-3)
    assert log_p.shape == log_q.shape == (len(axis), len(axis))


def test_the_exact_grid_covers_a_learned_prior_that_reaches_past_the_standard_box():
    """A decoder that ignores z: p(x) = p(x|z) whatever the prior, a closed form. A mixture with half its weight at
    z1 = 13 (past the standard box |z| <= 8, where the old grid saw half the prior: log 2 nats short): the grid's
    box grows to cover it, and the exact log p(x) is the closed form."""
    from aevb.evaluation import exact

    config = tiny(prior="mixture:2")
    params = config.network.init(jax.random.PRNGKey(0), 144, config)
    params["decoder"]["hidden"]["weight"] = jnp.zeros_like(params["decoder"]["hidden"]["weight"])  # logits constant
    params["prior"] = {"logits": jnp.zeros(2), "mean": jnp.array([[0.0, 0.0], [13.0, 0.0]]),
                       "log_std": jnp.full((2, 2), -0.5)}
    net, theta = config.network, probability.generative(config.network, params)
    assert exact.model_extent(net, theta) == pytest.approx(13 + 8 * np.exp(-0.5) + 0.4, abs=0.4)
    x = np.asarray(jax.random.bernoulli(jax.random.PRNGKey(1), 0.5, (5, 144)), np.float32)
    logits = np.asarray(net.decode(theta, jnp.zeros((1, 2))), np.float64)[0]
    closed_form = x @ logits - np.logaddexp(0.0, logits).sum()
    np.testing.assert_allclose(np.asarray(exact.log_px(net, theta, x)[0]), closed_form, atol=1e-3)
