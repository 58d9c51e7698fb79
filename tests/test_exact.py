"""The exact log p(x) against independent references: a closed form, a brute-force float64 grid,
the bounds that must stay below it, and the gap decomposition that must add up."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import run_cli, tiny, tiny_flags
from scipy import special, stats

from aevb import pipeline
from aevb.config import Config
from aevb.data import splits
from aevb.evaluation import answers, bounds, exact, gaps
from aevb.model import densities, networks
from aevb.runs import files, records

NET = networks.get("mlp")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A model trained on the synthetic data: posteriors narrow enough to need a fine grid."""
    run_dir = tmp_path_factory.mktemp("runs") / "r"
    pipeline.train(tiny(epochs=20), run_dir, progress=False)
    return pipeline.load(run_dir)


def _float64_log_px(theta, x, half_width=8.0, n=1201):
    """log p(x) on a uniform float64 grid over [-8, 8]^2, every point, no tiles: the brute force."""
    t = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), theta)
    axis = np.linspace(-half_width, half_width, n)
    z = np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2)
    log_joint = np.empty((len(x), len(z)))
    for start in range(0, len(z), 200000):
        zc = z[start : start + 200000]
        logits = np.tanh(zc @ t["hidden"]["weight"] + t["hidden"]["bias"]) @ t["out"]["weight"] + t["out"]["bias"]
        log_lik = x @ special.log_expit(logits).T + (1 - x) @ special.log_expit(-logits).T  # (N, P)
        log_joint[:, start : start + 200000] = log_lik + stats.norm.logpdf(zc).sum(-1)
    return special.logsumexp(log_joint, axis=1) + 2 * np.log(axis[1] - axis[0])


def test_a_decoder_that_ignores_z_gives_the_closed_form():
    # p(x|z) = p(x) for every z: log p(x) = sum_d log Bernoulli(x_d; sigmoid(b_d)), the prior integrating to 1.
    params = NET.init(jax.random.PRNGKey(0), 30, Config(hidden_dim=8))
    theta = jax.tree_util.tree_map(jnp.zeros_like, params["decoder"])
    theta["out"]["bias"] = jnp.linspace(-3.0, 3.0, 30)
    x = (np.random.default_rng(0).uniform(size=(7, 30)) < 0.4).astype(np.float32)
    got, _ = exact.log_px(NET, theta, x)
    expected = stats.bernoulli.logpmf(x, special.expit(np.linspace(-3.0, 3.0, 30))).sum(-1)
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_the_grid_agrees_with_a_brute_force_float64_grid(run):
    x = run.split.x_test[:8]
    got, stats_ = exact.log_px(run.net, run.params["decoder"], x)
    np.testing.assert_allclose(got, _float64_log_px(run.params["decoder"], x), atol=2e-3)
    assert stats_["points"] < 0.5 * (16 / exact.SPACING) ** 2  # the tiles cover part of the plane only


def test_halving_the_spacing_and_growing_the_extent_change_almost_nothing(run):
    x = run.split.x_test[:50]
    values, _ = exact.log_px(run.net, run.params["decoder"], x)
    check = exact.accuracy(run.net, run.params["decoder"], x, values)
    assert check["halved_spacing"]["max_abs_change"] < 0.01
    assert check["grown_extent"]["max_abs_change"] < 0.01


def test_importance_weighted_bounds_stay_below_the_exact_value(run):
    x = run.split.x_test[:20]
    log_px, _ = exact.log_px(run.net, run.params["decoder"], x)
    for defensive in (False, True):
        for k in (10, 200):
            draws = np.stack([bounds.iwae_per_image(run.net, run.params, x, k, jax.random.PRNGKey(r),
                                                      defensive=defensive) for r in range(12)])  # (runs, images)
            error = draws.std(axis=0, ddof=1) / np.sqrt(len(draws))
            assert np.all(draws.mean(axis=0) <= log_px + 4 * error + 1e-3)  # E[bound] <= log p(x)
    # The defensive proposal gets closer at large K than q alone (which misses mass off its mode).
    plain = bounds.iwae_per_image(run.net, run.params, x, 2000)
    defensive = bounds.iwae_per_image(run.net, run.params, x, 2000, defensive=True)
    assert np.mean(log_px - defensive) <= np.mean(log_px - plain) + 0.05


def test_the_gap_decomposition_adds_up(run):
    x = run.split.x_test[:40]
    log_px, _ = exact.log_px(run.net, run.params["decoder"], x)
    numbers = gaps.gap_decomposition(run.net, run.params, x, log_px, jax.random.PRNGKey(0))
    assert numbers["approximation_gap"] + numbers["amortization_gap"] == pytest.approx(
        numbers["log_px"] - numbers["elbo_encoder"], abs=1e-9)
    assert numbers["elbo_q_star"] <= numbers["log_px"] + 3 * numbers["elbo_q_star_se"]  # an ELBO stays below
    assert numbers["amortization_gap"] > -3 * numbers["amortization_gap_se"]  # SVI does not do worse than q


def test_the_defensive_mixture_density_and_draws():
    weights = (0.5, 0.25, 0.25)
    components = [(jnp.array([1.0, -2.0]), jnp.array([-1.0, 0.5])), (jnp.array([1.0, -2.0]), jnp.array([0.1, 1.6])),
                  (jnp.zeros(2), jnp.zeros(2))]
    z, log_r = densities.sample_gaussian_mixture(jax.random.PRNGKey(0), weights, components, (100000,))
    z, log_r = np.asarray(z, np.float64), np.asarray(log_r, np.float64)
    reference = special.logsumexp([np.log(w) + stats.norm.logpdf(z, np.asarray(m), np.exp(np.asarray(s))).sum(-1)
                                   for w, (m, s) in zip(weights, components, strict=True)], axis=0)
    np.testing.assert_allclose(log_r, reference, rtol=1e-5, atol=1e-5)
    for d in range(2):  # the draws follow the mixture, dimension by dimension
        cdf = lambda t, d=d: sum(w * stats.norm.cdf(t, float(m[d]), float(np.exp(s[d])))  # noqa: E731
                                 for w, (m, s) in zip(weights, components, strict=True))
        assert stats.kstest(z[:, d], cdf).pvalue > 1e-3


def test_without_a_grid_the_defensive_bound_is_reported_and_exact_says_why_not(tmp_path, capsys):
    argv = ["--runs-dir", str(tmp_path), "--name", "dz3"]
    assert run_cli(capsys, "train", *tiny_flags(epochs=3, latent_dim=3), "--no-progress", *argv)[0] == 0
    code, _, err = run_cli(capsys, "evaluate", "--exact", "--no-progress", *argv)
    assert code == 2 and "--exact integrates over a 2-D latent space" in err and "Dz = 3" in err
    code, out, _ = run_cli(capsys, "evaluate", "--no-progress", "-k", "50", *argv)
    summary = records.read_summary(tmp_path / "dz3")
    assert code == 0 and "defensive proposal" in out
    per_image = records.read_per_image(tmp_path / "dz3")
    assert summary["test_iwae_defensive"] == pytest.approx(per_image["test_iwae_defensive"].mean())
    assert run_cli(capsys, "report", *argv)[0] == 0
    text = files.report_path(tmp_path / "dz3").read_text()
    assert "Exact log p(x) not computed" in text and "the defensive proposal" in text


def test_training_records_the_exact_log_px_and_answer_c_cites_it(tmp_path, capsys):
    argv = ["--runs-dir", str(tmp_path), "--name", "t"]
    assert run_cli(capsys, "train", *tiny_flags(epochs=12, log_px_every=4), "--no-progress", *argv)[0] == 0
    rows = records.read_metrics(tmp_path / "t")
    assert [row["epoch"] for row in rows if "tracked" in row] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12]
    split = splits.load(tiny())
    params = pipeline.load(tmp_path / "t").params
    last = rows[-1]["tracked"]
    reference, _ = exact.log_px(NET, params["decoder"], split.x_test[: last["images"]])
    assert last["log_px"] == pytest.approx(reference.mean(), abs=0.01)  # the cheaper grid, within 0.01
    assert last["kl"] == pytest.approx(last["log_px"] - last["elbo"], abs=1e-4)
    code, out, _ = run_cli(capsys, "answers", *argv)
    rise = answers.kl_rise(rows)
    assert code == 0 and rise is not None
    if "from" in rise:
        assert f"from epoch {rise['from']} to {rise['to']}" in out and rise["elbo_rise"] > 0.1 < rise["kl_rise"]
    else:
        assert "this run does not show it" in out


def test_the_grid_asks_for_float32_matmuls():
    """Every matmul of the quadrature (the decoder at the grid points, x . logits) asks for full
    float32: a GPU's default (TF32 on an H200) moved log p(x) by up to 7e-3 nats, measured. A CPU
    computes float32 either way, so the request is what can be checked here."""
    theta = NET.init(jax.random.PRNGKey(0), 6, tiny(hidden_dim=8))["decoder"]
    x, logits, row = np.zeros((4, 6), np.float32), np.zeros((3, 6), np.float32), np.zeros(3, np.float32)
    z = np.zeros((3, 2), np.float32)
    for text in (exact._log_joint.lower(x, logits, row).as_text(), exact._tile_terms.lower(NET, theta, z).as_text()):
        dots = [line for line in text.splitlines() if "dot_general" in line]
        assert dots and all("precision = [HIGHEST, HIGHEST]" in line for line in dots), dots
