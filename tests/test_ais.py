"""HMC and AIS (aevb.evaluation.hmc, aevb.evaluation.ais) against targets whose answer is known:
a correlated Gaussian, a normalizing constant in closed form, a decoder that ignores z, and the exact
grid of a trained Dz = 2 model, bracketed from both sides by BDMC."""

import dataclasses
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import float64_log_joint, run_cli, tiny, tiny_flags, trained
from scipy import special, stats

from aevb import parallel, pipeline
from aevb.config import Config
from aevb.evaluation import ais, exact, gaps, hmc, likelihood
from aevb.model import networks
from aevb.runs import records

NET = networks.get("mlp")
MEAN = np.array([1.0, -2.0])
COVARIANCE = np.array([[1.0, 1.6], [1.6, 4.0]])  # standard deviations 1 and 2, correlation 0.8


def _gaussian_log_density(z, log_normalizer=0.0):
    """log N(z; MEAN, COVARIANCE) + log_normalizer, z (..., 2) -> (...), in jnp (the target of the tests)."""
    precision = jnp.asarray(np.linalg.inv(COVARIANCE), jnp.float32)
    d = z - jnp.broadcast_to(jnp.asarray(MEAN, jnp.float32), z.shape)
    constant = -np.log(2 * np.pi) - 0.5 * np.log(np.linalg.det(COVARIANCE)) + log_normalizer
    return -0.5 * jnp.einsum("...i,ij,...j->...", d, precision, d) + constant


def test_hmc_reaches_and_keeps_a_correlated_gaussian():
    """4000 chains started far from the target, N(0, I), after 150 transitions: the target's mean and
    covariance within a few standard errors, each marginal and a projection indistinguishable from the
    exact one by a KS test, and the chains really moved (acceptance strictly between 0 and 1)."""
    z = jax.random.normal(jax.random.PRNGKey(0), (4000, 2))
    state = hmc.init(_gaussian_log_density, z)

    @jax.jit
    def run(key, state):
        def step(state, key):
            state, info = hmc.kernel(key, state, _gaussian_log_density, jnp.full((4000,), 0.3), 10)
            return state, info["acceptance"]
        return jax.lax.scan(step, state, jax.random.split(key, 150))

    state, acceptance = run(jax.random.PRNGKey(1), state)
    samples = np.asarray(state.z, np.float64)
    assert 0.3 < float(acceptance.mean()) < 0.999
    standard_error = np.sqrt(np.diag(COVARIANCE) / len(samples))
    assert np.all(np.abs(samples.mean(0) - MEAN) < 5 * standard_error), samples.mean(0)
    np.testing.assert_allclose(np.cov(samples.T), COVARIANCE, atol=0.25)
    for direction in (np.array([1.0, 0.0]), np.array([0.0, 1.0]), np.array([0.8, -0.6])):
        projected = samples @ direction
        scale = np.sqrt(direction @ COVARIANCE @ direction)
        assert stats.kstest(projected, stats.norm(MEAN @ direction, scale).cdf).pvalue > 1e-3
    np.testing.assert_allclose(state.log_density, _gaussian_log_density(state.z), rtol=1e-5, atol=1e-5)


def test_proposals_are_accepted_with_the_metropolis_probability_and_keep_the_target():
    """At a step size where about half the proposals are refused: within each band of the Metropolis
    probability min(1, exp(-dH)), the fraction accepted is that band's mean probability (binomial standard
    errors), and 20 such transitions from exact draws of the target keep its covariance (a kernel that
    accepts every proposal, or none, fails both)."""
    n = 20000
    chol = np.linalg.cholesky(COVARIANCE)
    z = jnp.asarray(np.random.default_rng(3).normal(size=(n, 2)) @ chol.T + MEAN, jnp.float32)  # exact draws
    state = hmc.init(_gaussian_log_density, z)
    step = jax.jit(lambda key, state: hmc.kernel(key, state, _gaussian_log_density, jnp.full((n,), 1.1), 3))
    _, info = step(jax.random.PRNGKey(2), state)
    probability, accepted = np.asarray(info["acceptance"], np.float64), np.asarray(info["accepted"], np.float64)
    assert 0.2 < probability.mean() < 0.8, probability.mean()
    for low, high in ((0.0, 0.2), (0.2, 0.5), (0.5, 0.8), (0.8, 1.0)):
        band = (probability >= low) & (probability < high) if high < 1 else probability >= low
        assert band.sum() > 500, (low, band.sum())
        expected = probability[band].mean()
        se = np.sqrt(np.sum(probability[band] * (1 - probability[band]))) / band.sum()
        assert abs(accepted[band].mean() - expected) < 5 * se + 1e-3, (low, accepted[band].mean(), expected)
    for key in jax.random.split(jax.random.PRNGKey(3), 20):
        state, _ = step(key, state)
    samples = np.asarray(state.z, np.float64)
    np.testing.assert_allclose(np.cov(samples.T), COVARIANCE, rtol=0.06, atol=0.05)


def test_a_diverging_trajectory_is_refused_and_the_state_kept():
    z = jnp.zeros((3, 2))
    state = hmc.init(_gaussian_log_density, z)
    moved, info = hmc.kernel(jax.random.PRNGKey(0), state, _gaussian_log_density, jnp.full((3,), 1e6), 5)
    assert not np.any(info["accepted"])
    np.testing.assert_array_equal(moved.z, z)


def test_a_density_with_its_own_gradient_keeps_its_parts_with_the_point_kept():
    """hmc.Gradient (what AIS uses to carry the target and q0 apart): after transitions some accepted and
    some refused, every chain's carried parts, value and gradient are those of its own z, and the chains
    move as the plain kernel's (the same keys, autodiff's gradient) to rounding."""
    precision = np.linalg.inv(COVARIANCE).astype(np.float32)

    def evaluate(z):  # the Gaussian's value, its gradient in closed form, and parts: (value, z itself)
        value = _gaussian_log_density(z)
        return value, -(z - jnp.broadcast_to(jnp.asarray(MEAN, jnp.float32), z.shape)) @ precision, (value, z)

    z = jax.random.normal(jax.random.PRNGKey(0), (500, 2))
    own = hmc.State(z, *evaluate(z))
    plain = hmc.init(_gaussian_log_density, z)
    accepted = []
    for key in jax.random.split(jax.random.PRNGKey(1), 5):
        own, info = hmc.kernel(key, own, hmc.Gradient(evaluate), jnp.full((500,), 0.9), 3)
        plain, _ = hmc.kernel(key, plain, _gaussian_log_density, jnp.full((500,), 0.9), 3)
        accepted.append(np.asarray(info["accepted"]))
    assert 0.1 < np.mean(accepted) < 0.9  # both branches of the choice taken
    value, grad, _ = evaluate(own.z)
    np.testing.assert_allclose(own.log_density, value, rtol=1e-6)
    np.testing.assert_allclose(own.grad, grad, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(own.parts[0], own.log_density)
    np.testing.assert_array_equal(own.parts[1], own.z)
    np.testing.assert_allclose(own.z, plain.z, atol=1e-4)


SETTINGS = ais.Settings(steps=300, chains=16, leapfrog=5, pilot_chains=4)


def test_ais_finds_a_known_normalizing_constant():
    """A Gaussian target scaled by exp(3.7), from a start N(0, I) far from it (three images, the same
    target): log Z = 3.7 within three of its standard errors, and the pilot's step sizes give an
    acceptance near the 0.65 aimed at."""
    start = (lambda key, n: jax.random.normal(key, (n, 3, 2)), jnp.ones(3))  # q0 = N(0, I), scale 1

    parts = (lambda z: _gaussian_log_density(z, 3.7), lambda z: -0.5 * jnp.sum(z**2, -1) - np.log(2 * np.pi))

    out = np.asarray(jax.jit(lambda key: ais.estimate(key, parts, start, SETTINGS))(jax.random.PRNGKey(0)))
    log_z, se, acceptance = out[:, 0], out[:, 1], out[:, 2]
    assert np.all(np.abs(log_z - 3.7) < 3 * se + 0.02), (log_z, se)
    assert np.all(se < 0.2) and np.all(np.abs(acceptance - 0.65) < 0.1), (se, acceptance)
    # Fewer distributions, same chains: a worse estimate, still a lower bound in expectation.
    few = dataclasses.replace(SETTINGS, steps=3)
    worse = np.asarray(jax.jit(lambda key: ais.estimate(key, parts, start, few))(jax.random.PRNGKey(0)))
    assert np.mean(np.abs(worse[:, 0] - 3.7)) > np.mean(np.abs(log_z - 3.7))


def test_a_decoder_that_ignores_z_gives_the_closed_form():
    """p(x|z) = p(x): every chain's weight is log p(x) + log p(z) - log q0(z) summed along the path, so from
    the prior AIS is the closed form exactly, and from the defensive start within its standard error."""
    params = NET.init(jax.random.PRNGKey(0), 30, Config(hidden_dim=8))
    params["decoder"] = jax.tree_util.tree_map(jnp.zeros_like, params["decoder"])
    params["decoder"]["out"]["bias"] = jnp.linspace(-3.0, 3.0, 30)
    x = (np.random.default_rng(0).uniform(size=(7, 30)) < 0.4).astype(np.float32)
    expected = stats.bernoulli.logpmf(x, special.expit(np.linspace(-3.0, 3.0, 30))).sum(-1)
    prior = ais.ais_per_image(NET, params, x, dataclasses.replace(SETTINGS, start="prior"), 2)
    np.testing.assert_allclose(prior["log_px"], expected, atol=1e-4)
    assert np.all(np.isnan(prior["upper"]))
    # Each start named, not the default: the defensive mixture's samples weighed by the mixture's own density,
    # q's by q's. The encoder made narrow and off-centre, q = N(2, e^-2 I) whatever x, so that q, the widened q
    # and the prior differ by nats where each draws (a start weighed by another start's density is biased).
    # T = 1 too: one importance-sampling step from q0, where nothing but q0's density corrects its draws.
    # q itself as the start is given a wide q, N(1, e^0.6 I) (a narrow start under a wide target has heavy-tailed
    # log weights whose standard error understates the error: measured -0.5 nats at T = 300, not a bug).
    params["encoder"] = jax.tree_util.tree_map(jnp.zeros_like, params["encoder"])
    for start, q in (("defensive", [2.0, 2.0, -2.0, -2.0]), ("encoder", [1.0, 1.0, 0.3, 0.3])):
        params["encoder"]["out"]["bias"] = jnp.array(q)  # (mean, log_std), Dz = 2
        for steps in (30, 1):
            out = ais.ais_per_image(NET, params, x, dataclasses.replace(SETTINGS, start=start, steps=steps), 2)
            assert np.all(np.abs(out["log_px"] - expected) < 3 * out["log_px_se"] + 1e-3), (start, steps, out[
                "log_px"] - expected)


def test_ais_through_a_decoder_that_uses_z_against_quadrature():
    """A decoder whose pixels depend sharply on z (tanh hidden layer, output weights x 10): the posterior is
    narrow (SD about 0.3) and off-centre, so AIS from the prior is right only if HMC keeps each intermediate
    density. Reference: log p(x) by the rectangle rule on a 1201 x 1201 grid over [-9, 9]^2 in float64 numpy
    (not the exact grid's code; for a smooth integrand that vanishes at the edges it is accurate to rounding)."""
    params = NET.init(jax.random.PRNGKey(3), 6, Config(hidden_dim=8))
    params["decoder"]["out"]["weight"] = 10 * params["decoder"]["out"]["weight"]
    t = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), params["decoder"])
    x = (np.random.default_rng(5).uniform(size=(3, 6)) < 0.5).astype(np.float64)
    axis = np.linspace(-9, 9, 1201)
    z = np.stack(np.meshgrid(axis, axis), -1).reshape(-1, 2)  # (G, 2)
    log_joint = float64_log_joint(t, x, z)  # (3, G)
    truth = special.logsumexp(log_joint, axis=1) + 2 * np.log(axis[1] - axis[0])  # (3,)
    out = ais.ais_per_image(NET, params, x.astype(np.float32), dataclasses.replace(SETTINGS, start="prior",
                                                                                     chains=32), 2)
    assert np.all(np.abs(out["log_px"] - truth) < 3 * out["log_px_se"] + 0.02), (out["log_px"] - truth)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return trained(tmp_path_factory, epochs=10)


def test_forward_and_reverse_ais_bracket_the_exact_value(run):
    """On 30 examples simulated from a trained Dz = 2 model, BDMC: forward AIS <= the exact log p(x) of
    the grid <= reverse AIS, on average within their standard errors, and their gap is >= 0 within its
    standard error (measured from the prior at T = 300: forward - exact 0.034, reverse - exact -0.033, gap
    -0.066 +- 0.039: the bounds meet on this small model); on test images AIS at the default T agrees with
    the grid within 0.1 nats per image (measured 0.066)."""
    z, x = likelihood.simulate(run.net, run.params["decoder"], 2, 30)
    truth = exact.log_px(run.net, run.params["decoder"], x)[0]
    both = ais.ais_per_image(run.net, run.params, x, SETTINGS, 2, z_true=z)
    forward, upper = both["log_px"], both["upper"]
    gap = upper - forward
    se = lambda v: v.std(ddof=1) / np.sqrt(len(v))  # noqa: E731
    assert np.mean(forward - truth) < 3 * se(forward - truth) + 0.01, (forward - truth).mean()
    assert np.mean(upper - truth) > -3 * se(upper - truth) - 0.01, (upper - truth).mean()
    assert -3 * se(gap) < gap.mean() < 2, (gap.mean(), se(gap))
    print(f"forward - exact {np.mean(forward - truth):.3f}, reverse - exact {np.mean(upper - truth):.3f}")
    test = run.split.x_test[:30]
    default_steps = dataclasses.replace(SETTINGS, steps=ais.Settings().steps)  # the prior start wants T = 1000
    estimate = ais.ais_per_image(run.net, run.params, test, default_steps, 2)["log_px"]
    grid = exact.log_px(run.net, run.params["decoder"], test)[0]
    assert np.abs(estimate - grid).mean() < 0.1, np.abs(estimate - grid).mean()
    print(f"gap {gap.mean():.3f} +- {se(gap):.3f}, |AIS - exact| on test images {np.abs(estimate - grid).mean():.3f}")


def test_the_same_numbers_for_the_same_key_and_on_two_devices(run):
    x, settings = run.split.x_test[:150], dataclasses.replace(SETTINGS, steps=20)
    alone = ais.ais_per_image(run.net, run.params, x, settings, 2)
    again = ais.ais_per_image(run.net, run.params, x, settings, 2)
    shared = ais.ais_per_image(run.net, run.params, x, settings, 2, devices=parallel.devices(2))
    other = ais.ais_per_image(run.net, run.params, x, settings, 2, key=jax.random.PRNGKey(11))
    for name in ("log_px", "log_px_se", "acceptance"):
        np.testing.assert_array_equal(again[name], alone[name])
        np.testing.assert_array_equal(shared[name], alone[name])
    assert not np.array_equal(other["log_px"], alone["log_px"])


def test_schedules():
    for kind in ("sigmoid", "linear"):
        beta = ais.schedule(100, kind)
        assert beta.shape == (101,) and beta[0] == 0 and beta[-1] == 1 and np.all(np.diff(beta) > 0)
    sigmoid = np.diff(ais.schedule(100))
    assert sigmoid[0] < sigmoid[50] > sigmoid[-1]  # small steps at both ends
    with pytest.raises(ValueError):
        ais.schedule(10, "cosine")


def test_evaluate_with_ais_reports_it_beside_the_exact_value(tmp_path, capsys):
    """`aevb evaluate --ais` on a trained Dz = 2 run: summary.json's "ais" holds the estimate on the images
    asked for, its difference from the exact value of the same images (computed here from the grid) and the
    BDMC bounds around the exact value of the simulated examples; per_image.npz the per-image estimates."""
    from aevb.runs import records

    argv = ["--runs-dir", str(tmp_path), "--name", "r"]
    assert pipeline.train(tiny(epochs=3, n_train=200, n_test=100), tmp_path / "r", progress=False)["status"] == "done"
    code, out, err = run_cli(capsys, "evaluate", "--ais", "--ais-steps", "50", "--ais-images", "20", "--bdmc", "10",
                             "--no-progress", *argv)
    assert code == 0, err
    ais_numbers, per_image = records.read_summary(tmp_path / "r")["ais"], records.read_per_image(tmp_path / "r")
    run = pipeline.load(tmp_path / "r")
    assert ais_numbers["images"] == 20 and ais_numbers["steps"] == 50 and per_image["test_ais"].shape == (20,)
    assert ais_numbers["log_px"] == pytest.approx(float(np.mean(per_image["test_ais"].astype(np.float64))))
    grid = exact.log_px(run.net, run.params["decoder"], run.split.x_test[:20])[0]
    assert ais_numbers["minus_exact"] == pytest.approx(float(np.mean(per_image["test_ais"] - grid)), abs=1e-4)
    bdmc = ais_numbers["bdmc"]
    assert bdmc["examples"] == 10 and bdmc["forward"] <= bdmc["reverse"]
    assert bdmc["forward"] - 3 * bdmc["forward_se"] < bdmc["exact"] < bdmc["reverse"] + 3 * bdmc["reverse_se"]
    assert "test log p(x) by AIS" in out and "BDMC on 10 examples" in out and "gap" in out
    assert "from the prior" in out  # the default start, named as it is
    assert "AIS will run: 20 test images (T=50, C=2, L=2); BDMC on 10 simulated examples" in out  # said first
    assert out.index("AIS will run") < out.index("test log p(x) by AIS")
    # The report shows the same numbers, in the words the command printed.
    assert run_cli(capsys, "report", *argv)[0] == 0
    page = (tmp_path / "r" / "report.html").read_text()
    assert f"test log p(x) by AIS {ais_numbers['log_px']:.2f}" in page and f"gap {bdmc['gap']:.2f}" in page


def test_aevb_run_at_dz_3_reports_ais_as_the_number_to_trust(tmp_path, capsys):
    """Where there is no grid, `aevb run` evaluates log p(x) by AIS with the run's AIS settings and says it
    is the number to trust, with the BDMC gap beside it: in summary.json, the report's headline, the
    figure (its data are the run's numbers) and the comparison page. A finished run is not evaluated again."""
    from matplotlib.figure import Figure

    from aevb.runs import records
    from aevb.views import drawing

    argv = ["--runs-dir", str(tmp_path), "--name", "r", "--no-progress"]
    flags = tiny_flags(epochs=2, latent_dim=3, ais_images=20, ais_train_images=12, n_train=200, n_test=100)
    code, out, err = run_cli(capsys, "run", *flags, *argv)
    assert code == 0, err
    assert "test log p(x) by AIS" in out and "BDMC on 10 examples" in out
    s, per_image = records.read_summary(tmp_path / "r"), records.read_per_image(tmp_path / "r")
    ais_values = per_image["test_ais"].astype(np.float64)
    assert s["ais"]["images"] == 20 and s["ais"]["steps"] == 20 and s["ais"]["chains"] == 2
    assert ais_values.shape == (20,)
    assert s["test_log_px_ais"] == pytest.approx(ais_values.mean())
    assert s["test_log_px_ais_se"] == pytest.approx(ais_values.std(ddof=1) / np.sqrt(20))
    assert s["bdmc_gap"] == s["ais"]["bdmc"]["gap"] and s["bdmc_gap"] > -3 * s["bdmc_gap_se"]
    g = s["ais"]["gap_decomposition"]  # with AIS as log p(x): the same images' AIS, and gaps that add up
    assert g["images"] == 20 and g["log_px"] == pytest.approx(ais_values.mean())
    assert g["approximation_gap"] + g["amortization_gap"] == pytest.approx(g["log_px"] - g["elbo_encoder"], abs=1e-6)
    assert g["amortization_gap"] > -3 * g["amortization_gap_se"]  # q* fits each image at least as well as q
    assert "where the ELBO's gap comes from, AIS as log p(x)" in out
    # The training images asked for (ais_train_images): the same AIS on the first 12 of them, and their gaps.
    run = pipeline.load(tmp_path / "r")
    train = s["ais"]["train"]
    alone = ais.ais_per_image(run.net, run.params, run.split.x_train[:12], likelihood.settings_of(run.config), 3)[
        "log_px"]
    np.testing.assert_array_equal(per_image["train_ais"], alone)
    assert train["images"] == 12 and train["log_px"] == pytest.approx(float(np.mean(alone.astype(np.float64))))
    t = train["gap_decomposition"]
    assert t["images"] == 12 and t["log_px"] == pytest.approx(train["log_px"])
    assert t["approximation_gap"] + t["amortization_gap"] == pytest.approx(t["log_px"] - t["elbo_encoder"], abs=1e-6)
    assert "AIS will run: 20 test images and 12 training images" in out
    assert "train log p(x) by AIS" in out and "first 12 training images:" in out
    curve = s["ais_vs_steps"]
    assert curve["steps"] == [10, 20] and curve["k"] == list(likelihood.CURVE_KS) and curve["reference"] == "ais"
    assert curve["ais"][-1] == pytest.approx(ais_values.mean())  # the curve ends at the run's own T
    assert len(curve["bdmc"]["forward"]) == 2 and curve["bdmc"]["examples"] == 10
    # The report's headline: AIS, the number to trust, and the gap.
    page = (tmp_path / "r" / "report.html").read_text()
    assert f"log p(x) by AIS <b>{s['test_log_px_ais']:.2f} ± {s['test_log_px_ais_se']:.2f}</b>" in page
    assert "the number to trust" in page and f"BDMC gap {s['bdmc_gap']:.2f}" in page
    assert f"train log p(x) by AIS {train['log_px']:.2f} ± {train['log_px_se']:.2f}" in page
    assert (tmp_path / "r" / "figures" / "ais.png").stat().st_size > 10_000
    # The figure plots these numbers: the AIS curve's points, and the histogram of AIS minus IWAE per image.
    figure = drawing.figure("ais", pipeline.load(tmp_path / "r"), [])
    assert isinstance(figure, Figure)
    top_left, _, _, bottom_right = figure.axes[:4]
    np.testing.assert_allclose(np.asarray(top_left.lines[0].get_ydata(), float), curve["ais"], rtol=1e-6)
    gaps = ais_values - per_image["test_iwae"][:20].astype(np.float64)
    defensive = ais_values - per_image["test_iwae_defensive"][:20].astype(np.float64)
    both = np.concatenate([gaps, defensive])
    edges = np.linspace(min(both.min(), 0), max(both.max(), 0.1), 40)  # the figure's bins: both sets, 0 inside
    counts = [p.get_height() for p in bottom_right.patches]  # the plain bound's 39 bars, then the defensive's
    np.testing.assert_array_equal(counts, np.concatenate([np.histogram(gaps, edges)[0],
                                                          np.histogram(defensive, edges)[0]]))
    # Done once: a second aevb run finds the evaluation there.
    code, out, err = run_cli(capsys, "run", *flags, *argv)
    assert code == 0 and "by AIS" not in out, err
    # The comparison page has the AIS column and the gap.
    assert run_cli(capsys, "compare", str(tmp_path / "r"))[0] == 0
    compared = (tmp_path / "r" / "compare.html").read_text()
    assert "AIS test log p(x)" in compared and "BDMC gap" in compared
    assert f"{s['test_log_px_ais']:.2f} ± {s['test_log_px_ais_se']:.2f}" in compared


def test_ais_on_no_images_is_a_usage_line(tmp_path, capsys):
    assert pipeline.train(tiny(epochs=1, latent_dim=3), tmp_path / "r", progress=False)["status"] == "done"
    code, _, err = run_cli(capsys, "evaluate", "--ais", "--ais-images", "0", "--no-progress", "--runs-dir",
                           str(tmp_path), "--name", "r")
    assert code == 2 and "Traceback" not in err, err
    assert err.splitlines()[-1] == "aevb: error: AIS needs at least one test image (--ais-images)"
    assert "test_elbo" not in records.read_summary(tmp_path / "r")  # refused before any evaluation ran


def test_the_gap_decomposition_against_closed_forms_at_dz_3():
    """A decoder that ignores z: the posterior is the prior, so q* (SVI) reaches it, the approximation gap
    log p(x) - ELBO(q*) is 0, and the amortization gap ELBO(q*) - ELBO(q) is KL(q || prior) in closed form
    (float64 numpy). A decomposition with its two gaps swapped (they still add up) fails here."""
    params = NET.init(jax.random.PRNGKey(1), 30, Config(hidden_dim=8, latent_dim=3))
    params["decoder"] = jax.tree_util.tree_map(jnp.zeros_like, params["decoder"])
    params["decoder"]["out"]["bias"] = jnp.linspace(-2.0, 2.0, 30)
    params["encoder"] = jax.tree_util.tree_map(jnp.zeros_like, params["encoder"])
    mean, log_std = np.array([0.5, -0.4, 0.3]), np.array([-0.5, -0.3, 0.2])
    params["encoder"]["out"]["bias"] = jnp.asarray(np.concatenate([mean, log_std]), jnp.float32)
    x = (np.random.default_rng(2).uniform(size=(6, 30)) < 0.5).astype(np.float32)
    log_px = stats.bernoulli.logpmf(x, special.expit(np.linspace(-2.0, 2.0, 30))).sum(-1)
    kl = 0.5 * np.sum(mean**2 + np.exp(2 * log_std) - 1 - 2 * log_std)  # 0.59 nats
    g = gaps.gap_decomposition(NET, params, x, log_px, jax.random.PRNGKey(4))
    assert g["q_star"] == "svi" and g["images"] == 6
    assert abs(g["approximation_gap"]) < 0.1, g
    assert abs(g["amortization_gap"] - kl) < 0.1, (g, kl)
    assert g["elbo_encoder"] == pytest.approx(np.mean(log_px) - kl, abs=0.1)


def test_ais_images_asks_for_that_many_images_worth_of_work():
    """--ais-images N without --bdmc simulates at most N BDMC examples (the run's 100 were once run for 5 test
    images); --bdmc given is kept, more or fewer; without --ais-images the run's own settings stand."""
    config = tiny(bdmc=100, ais_images=40)
    assert likelihood.settings_of(config, images=5).bdmc == 5
    assert likelihood.settings_of(config, images=500).bdmc == 100
    assert likelihood.settings_of(config, images=5, bdmc=50).bdmc == 50
    assert likelihood.settings_of(config, images=5, bdmc=0).bdmc == 0
    assert likelihood.settings_of(config).bdmc == 100 and likelihood.settings_of(config, steps=7).bdmc == 100
    small, large = (likelihood.plan(likelihood.settings_of(config, images=n)) for n in (5, 50))
    gradients = [int(re.search(r"about ([0-9 ]+) gradient", line).group(1).replace(" ", "")) for line in (small, large)]
    # C = 2 chains of L = 2 leapfrog steps per distribution: T = 20 and the curve's T = 10, each on the 5 images
    # and the 5 simulated examples forward and reverse.
    assert gradients[0] == 2 * 2 * (20 + 10) * (5 + 2 * 5)
    assert "5 test images" in small and "BDMC on 5 simulated" in small and gradients[0] < gradients[1] / 5
