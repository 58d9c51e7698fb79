"""The literature's settings (deeper and convolutional networks, activations, dynamic binarization,
Burda's schedule, Adam's epsilon, a KL warm-up, Adagrad), config and sweep files, and the protocols
that `aevb reproduce` runs: each checked against its formula or an independent reference."""

import json
import math
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import SYNTHETIC, run_cli, tiny, tiny_flags
from scipy import stats

from aevb import pipeline, protocols
from aevb.config import Config
from aevb.data import datasets, splits
from aevb.errors import ConfigError
from aevb.model import densities, layers, networks, probability
from aevb.protocols import reproduce
from aevb.runs import files, records, sweeps
from aevb.training import compiled, optimizers, trained


def _leaves_equal(a, b):
    return all(np.array_equal(x, y) for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b),
                                                     strict=True))


def test_the_default_mlp_is_the_assignments_network():
    """Config() gives the one-layer 500-tanh MLP written out by hand: the same four keys, the same
    weights, the same outputs (a float64 numpy forward pass)."""
    config = Config()
    params, _ = compiled.init_state(config)
    k1, k2, k3, k4 = jax.random.split(jax.random.PRNGKey(0), 4)
    expected = {"encoder": {"hidden": layers.dense_init(k1, 784, 500), "out": layers.dense_init(k2, 500, 4)},
                "decoder": {"hidden": layers.dense_init(k3, 2, 500), "out": layers.dense_init(k4, 500, 784)}}
    assert _leaves_equal(params, expected)
    z = np.random.default_rng(0).normal(size=(3, 2))
    t = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), params["decoder"])
    reference = np.tanh(z @ t["hidden"]["weight"] + t["hidden"]["bias"]) @ t["out"]["weight"] + t["out"]["bias"]
    np.testing.assert_allclose(config.network.decode(params["decoder"], jnp.asarray(z, jnp.float32)), reference,
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("activation, numpy_activation", [("relu", lambda a: np.maximum(a, 0)),
                                                          ("elu", lambda a: np.where(a > 0, a, np.expm1(a))),
                                                          ("softplus", lambda a: np.logaddexp(0, a))])
def test_deeper_mlps_mirror_their_layers_with_the_activation_named(activation, numpy_activation):
    config = tiny(hidden="16,8", activation=activation, latent_dim=3)
    params = config.network.init(jax.random.PRNGKey(1), 144, config)
    shapes = jax.tree_util.tree_map(lambda a: a.shape, params)
    assert shapes["encoder"] == {"hidden": {"weight": (144, 16), "bias": (16,)},
                                 "hidden_2": {"weight": (16, 8), "bias": (8,)}, "out": {"weight": (8, 6), "bias": (6,)}}
    assert shapes["decoder"] == {"hidden": {"weight": (3, 8), "bias": (8,)},
                                 "hidden_2": {"weight": (8, 16), "bias": (16,)},
                                 "out": {"weight": (16, 144), "bias": (144,)}}
    t = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), params["decoder"])
    z = np.random.default_rng(1).normal(size=(5, 3))
    h = numpy_activation(numpy_activation(z @ t["hidden"]["weight"] + t["hidden"]["bias"]) @ t["hidden_2"]["weight"]
                         + t["hidden_2"]["bias"])
    np.testing.assert_allclose(config.network.decode(params["decoder"], jnp.asarray(z, jnp.float32)),
                               h @ t["out"]["weight"] + t["out"]["bias"], rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("settings, message", [
    ({"hidden": "200,x"}, "hidden must be widths"), ({"hidden": "0"}, "hidden must be widths"),
({"architecture": "conv", "hidden": "20"}, "have their own"),
    ({"activation": "sigmoid"}, "activation is one of tanh, relu, elu, softplus"),
    ({"binarization": "random"}, "binarization is one of threshold, dynamic"),
    ({"lr_schedule": "cosine"}, "lr_schedule is one of constant, burda"),
    ({"optimizer": "sgd"}, "optimizer is one of adam, adagrad, adam-normgrad"),
    ({"adam_eps": 0.0}, "adam_eps must be greater"),
    ({"optimizer": "adagrad", "adam_eps": 1e-4}, "adam_eps is Adam's"),
    ({"kl_warmup": 5, "objective": "iwae"}, "iwae objective has none"), ({"kl_warmup": -1}, "at least 0"),
])
def test_bad_literature_settings_are_refused_with_the_setting_named(settings, message):
    with pytest.raises(ConfigError, match=message):
        tiny(**settings)


@pytest.mark.parametrize("image_shape", [(28, 28), (12, 12), (13, 9)])
def test_the_conv_networks_fit_any_image_shape(image_shape):
    """The TensorFlow CVAE tutorial's layers: 32 and 64 filters of stride 2 down, the mirror up, logits
    of the image's own shape; batch axes of any rank pass through, and an image's code does not depend
    on the other images of its batch."""
    net = networks.build("conv", "relu", image_shape)
    config = Config(architecture="conv", latent_dim=3)
    d = image_shape[0] * image_shape[1]
    params = net.init(jax.random.PRNGKey(0), d, config)
    coarse = -(-image_shape[0] // 4) * -(-image_shape[1] // 4)
    assert params["encoder"]["conv_1"]["weight"].shape == (3, 3, 1, 32)
    assert params["encoder"]["conv_2"]["weight"].shape == (3, 3, 32, 64)
    assert params["encoder"]["out"]["weight"].shape == (coarse * 64, 6)
    assert params["decoder"]["hidden"]["weight"].shape == (3, coarse * 32)
    x = (np.random.default_rng(0).uniform(size=(2, 4, d)) < 0.3).astype(np.float32)
    mean, log_std = net.encode(params["encoder"], jnp.asarray(x))
    assert mean.shape == log_std.shape == (2, 4, 3)
    assert net.decode(params["decoder"], mean).shape == (2, 4, d)
    alone = net.encode(params["encoder"], jnp.asarray(x[0, :1]))[0]
    np.testing.assert_allclose(alone, mean[0, :1], rtol=1e-5, atol=1e-5)


def test_a_conv_run_trains_end_to_end_and_the_explorer_says_it_cannot_show_it(tmp_path, capsys):
    argv = ["--runs-dir", str(tmp_path), "--name", "c"]
    code, out, err = run_cli(capsys, "train", *tiny_flags(epochs=2), "--architecture", "conv", "--activation", "relu",
                             "--no-progress", *argv)
    assert code == 0, err
    assert run_cli(capsys, "evaluate", "--no-progress", *argv)[0] == 0
    assert run_cli(capsys, "report", *argv)[0] == 0
    rows = records.read_metrics(tmp_path / "c")
    assert rows[1]["train_elbo"] > rows[0]["train_elbo"]  # it learns
    summary = records.read_summary(tmp_path / "c")
    assert summary["test_iwae"] >= summary["test_elbo"] - 3 * summary["test_elbo_se"]
    page = files.report_path(tmp_path / "c").read_text()
    assert "cannot run the decoder of this model" in page and "the conv networks" in page


def test_dynamic_binarization_draws_each_pixel_with_its_grey_level(tmp_path):
    """Over 400 epochs, each training pixel is 1 in a fraction of them that a binomial test accepts for
    p = grey/255 (the smallest of 144 x 20 p-values, Bonferroni-corrected, above 0.001); the epochs'
    draws differ, and the test images are one fixed draw, the same every time the data is loaded."""
    config = tiny(binarization="dynamic")
    split = splits.load(config)
    grey = split.train_grey[:20]  # (20, 144)
    draw = jax.jit(lambda epoch: compiled.epoch_images(config, jnp.asarray(grey), config.seed, epoch))
    epochs = 400
    ones = sum(np.asarray(draw(e), np.int64) for e in range(1, epochs + 1))
    p_values = np.array([stats.binomtest(int(k), epochs, float(p)).pvalue if 0 < p < 1 else float(k == epochs * p)
                         for k, p in zip(ones.ravel(), grey.ravel(), strict=True)])
    assert p_values.min() * p_values.size > 1e-3, p_values.min()
    assert not np.array_equal(draw(1), draw(2))
    again = splits.load(config)
    np.testing.assert_array_equal(again.x_test, split.x_test)
    np.testing.assert_array_equal(again.x_train, split.x_train)
    assert set(np.unique(split.x_test)) <= {0.0, 1.0} and "PRNGKey(20130)" in split.binarization
    threshold = splits.load(tiny())
    assert threshold.train_grey is None and not np.array_equal(threshold.x_test, split.x_test)
    # The test images' fraction of ones is their mean grey level (28 800 pixels: SE under 0.003).
    test_bytes = datasets.load(SYNTHETIC.name)[0].arrays["train_images"][600:800]
    assert abs(split.x_test.mean() - splits.grey(test_bytes).mean()) < 0.01


def test_a_resumed_dynamic_run_equals_an_uninterrupted_one(tmp_path):
    settings = {"binarization": "dynamic", "lr_schedule": "burda", "kl_warmup": 2, "epochs": 5}
    pipeline.train(tiny(**settings), tmp_path / "whole", progress=False)
    pipeline.train(tiny(**{**settings, "epochs": 2}), tmp_path / "cut", progress=False)
    pipeline.train({"epochs": 5}, tmp_path / "cut", "resume", progress=False)
    whole, cut = trained.restore(tmp_path / "whole"), trained.restore(tmp_path / "cut")
    assert _leaves_equal(whole[1], cut[1]) and _leaves_equal(whole[2], cut[2]) and cut[3] == 5
    pipeline.evaluate(tmp_path / "whole", progress=False)
    summary = records.read_summary(tmp_path / "whole")  # the summary states how the test set was drawn
    assert np.isfinite(summary["train_elbo_last_epoch"]) and "drawn once with jax.random.PRNGKey(20130)" in summary[
        "binarization"]


def test_burdas_schedule_equals_its_formula_at_every_boundary():
    """3^i epochs at 1e-3 * 10^(-i/7), i = 0..7: the step size of the first and last step of every stage,
    as optax's schedule sees the step count, and 3280 epochs in all."""
    config = tiny(lr_schedule="burda", batch_size=50)  # 600 images: 12 steps per epoch
    rate, steps = optimizers.schedule(config), 12
    first = 1
    for i in range(8):
        last = first + 3**i - 1
        for epoch in (first, last):
            for count in ((epoch - 1) * steps, epoch * steps - 1):
                assert float(rate(count)) == pytest.approx(1e-3 * 10 ** (-i / 7), rel=1e-6), (i, epoch, count)
        first = last + 1
    assert first - 1 == 3280 and optimizers.BURDA_ENDS[-1] == 3280
    assert float(rate(5000 * steps)) == pytest.approx(1e-3 * 10 ** (-1), rel=1e-6)  # the last stage goes on
    assert optimizers.schedule(tiny()) == 1e-3


def test_adam_eps_and_adagrad_are_the_optimizers_asked_for():
    """One step from zero state on a known gradient: Adam's first update is -lr g / (|g| + eps)
    (bias-corrected), Adagrad's -lr g / sqrt(0.1 + g^2) (optax's initial accumulator 0.1)."""
    g = {"w": jnp.array([1e-4, 0.5, -2.0])}
    params = {"w": jnp.zeros(3)}
    for config, expected in [(tiny(adam_eps=1e-4), -1e-3 * g["w"] / (jnp.abs(g["w"]) + 1e-4)),
                             (tiny(optimizer="adagrad", learning_rate=0.02),
                              -0.02 * g["w"] / jnp.sqrt(0.1 + g["w"] ** 2 + 1e-7))]:
        opt = optimizers.optimizer(config)
        updates, _ = opt.update(g, opt.init(params), params)
        np.testing.assert_allclose(updates["w"], expected, rtol=1e-4)


def test_adam_normgrad_is_the_vampprior_codes_update_rule():
    """Three steps of adam-normgrad against the VampPrior code's AdamNormGrad (utils/optimizer.py) written out in
    float64 numpy: each array's gradient over (its norm, all entries, + 1e-7), then Adam's moments and bias
    corrections (epsilon after the correction, as optax places it). A gradient's scale does not change the step."""
    config = tiny(optimizer="adam-normgrad", learning_rate=5e-4)
    rng = np.random.default_rng(0)
    params = {"w": jnp.asarray(rng.normal(size=(3, 4)), jnp.float32), "b": jnp.zeros(4)}
    opt = optimizers.optimizer(config)
    state, moments, ours = opt.init(params), {k: (0.0, 0.0) for k in params}, dict(params)
    reference = {k: np.asarray(v, np.float64) for k, v in params.items()}
    for step in range(1, 4):
        grads = {"w": jnp.asarray(rng.normal(size=(3, 4)) * 10.0**step, jnp.float32),
                 "b": jnp.asarray(rng.normal(size=4) * 1e-3, jnp.float32)}
        updates, state = opt.update(grads, state, ours)
        ours = jax.tree_util.tree_map(lambda p, u: p + u, ours, updates)
        for k, g in grads.items():
            g = np.asarray(g, np.float64)
            g = g / (np.sqrt(np.sum(g**2)) + 1e-7)
            m, v = moments[k]
            m, v = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g**2
            moments[k] = m, v
            reference[k] = reference[k] - 5e-4 * (m / (1 - 0.9**step)) / (np.sqrt(v / (1 - 0.999**step)) + 1e-8)
    for k in params:
        np.testing.assert_allclose(ours[k], reference[k], rtol=1e-5, atol=1e-7)
    assert float(jnp.max(jnp.abs(ours["w"] - params["w"]))) < 3 * 5e-4  # a step of 10^3-sized gradients is lr-sized


@pytest.mark.parametrize("activation, numpy_activation", [("linear", lambda a: a), ("tanh", np.tanh)])
def test_the_gated_network_is_the_vampprior_codes_gated_mlp(activation, numpy_activation):
    """--architecture gated: each hidden unit activation(value) times sigmoid(gate) (utils/nn.py's GatedDense), the
    decoder the encoder's mirror, q from the encoder's last dense layer as the mlp's; a float64 numpy forward pass."""
    config = tiny(architecture="gated", hidden="16,8", activation=activation, latent_dim=3)
    params = config.network.init(jax.random.PRNGKey(1), 144, config)
    shapes = jax.tree_util.tree_map(lambda a: a.shape, params)
    assert shapes["encoder"] == {"hidden": {"value": {"weight": (144, 16), "bias": (16,)},
                                            "gate": {"weight": (144, 16), "bias": (16,)}},
                                 "hidden_2": {"value": {"weight": (16, 8), "bias": (8,)},
                                              "gate": {"weight": (16, 8), "bias": (8,)}},
                                 "out": {"weight": (8, 6), "bias": (6,)}}
    assert shapes["decoder"]["hidden"]["gate"]["weight"] == (3, 8) and shapes["decoder"]["out"]["weight"] == (16, 144)
    t = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), params)

    def forward(layers, h):
        for name in ("hidden", "hidden_2"):
            value, gate = (h @ layers[name][part]["weight"] + layers[name][part]["bias"] for part in ("value", "gate"))
            h = numpy_activation(value) / (1 + np.exp(-gate))
        return h @ layers["out"]["weight"] + layers["out"]["bias"]

    rng = np.random.default_rng(1)
    z, x = rng.normal(size=(5, 3)), (rng.uniform(size=(5, 144)) < 0.3).astype(np.float64)
    np.testing.assert_allclose(config.network.decode(params["decoder"], jnp.asarray(z, jnp.float32)),
                               forward(t["decoder"], z), rtol=1e-4, atol=1e-4)
    mean, log_std = config.network.encode(params["encoder"], jnp.asarray(x, jnp.float32))
    outputs = forward(t["encoder"], x)
    np.testing.assert_allclose(mean, outputs[:, :3], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(log_std, outputs[:, 3:], rtol=1e-4, atol=1e-4)


def test_the_gated_networks_weights_start_he_normal_and_its_biases_as_pytorchs():
    """A 400 x 300 gated layer: weights N(0, 2/400) and biases U(-1/20, 1/20) by Kolmogorov-Smirnov tests, each
    array from a key of its own (no two equal)."""
    layer = networks.gated_layers(jax.random.PRNGKey(3), (400, 300, 2))["hidden"]
    for part in ("value", "gate"):
        weights, biases = (np.asarray(layer[part][k], np.float64).ravel() for k in ("weight", "bias"))
        assert stats.kstest(weights / math.sqrt(2 / 400), "norm").pvalue > 1e-3
        assert stats.kstest(biases, "uniform", args=(-1 / 20, 2 / 20)).pvalue > 1e-3
    assert not np.array_equal(layer["value"]["weight"], layer["gate"]["weight"])


def test_a_gated_run_with_the_vampprior_trains_and_the_explorer_says_it_cannot_show_it(tmp_path, capsys):
    argv = ["--runs-dir", str(tmp_path), "--name", "g"]
    code, out, err = run_cli(capsys, "train", *tiny_flags(epochs=2, hidden="16,16", activation="linear",
                                                          prior="vamp:5", optimizer="adam-normgrad"),
                             "--architecture", "gated", "--no-progress", *argv)
    assert code == 0, err
    rows = records.read_metrics(tmp_path / "g")
    assert rows[1]["train_elbo"] > rows[0]["train_elbo"]  # it learns
    run = pipeline.load(tmp_path / "g")
    assert set(run.params) == {"encoder", "decoder", "prior"} and "gate" in run.params["decoder"]["hidden"]
    for command in (["evaluate", "--no-progress"], ["report"]):
        assert run_cli(capsys, *command, *argv)[0] == 0
    summary = records.read_summary(tmp_path / "g")
    assert summary["test_iwae"] >= summary["test_elbo"] - 3 * summary["test_elbo_se"]
    assert "the gated networks" in files.report_path(tmp_path / "g").read_text()


def test_the_kl_warmup_weights_the_kl_term_linearly():
    config = tiny(kl_warmup=2)  # 12 steps per epoch: the weight reaches 1 at step 24
    weights = np.asarray(compiled.kl_weight(config, jnp.arange(30)))
    np.testing.assert_allclose(weights, np.minimum(1, np.arange(30) / 24), rtol=1e-6)
    params, _ = compiled.init_state(config)
    net, x, key = config.network, jnp.asarray(splits.load(config).x_train[:8]), jax.random.PRNGKey(3)
    plain = probability.elbo_per_image(key, net, params, x, 4)
    np.testing.assert_allclose(probability.elbo_per_image(key, net, params, x, 4, kl_weight=1.0), plain, rtol=1e-5)
    q = net.encode(params["encoder"], x)
    z = densities.sample_diag_gaussian(key, *q, (4,))  # the draws elbo_per_image makes, (4, 8, 2)
    expected = jnp.mean(probability.log_likelihood(net, params["decoder"], x, z), 0)
    np.testing.assert_allclose(probability.elbo_per_image(key, net, params, x, 4, kl_weight=0.0), expected,
                               rtol=1e-5)
    analytic = probability.elbo_analytic_kl_per_image(key, net, params, x, 4, kl_weight=0.5)
    full = probability.elbo_analytic_kl_per_image(key, net, params, x, 4)
    zero = probability.elbo_analytic_kl_per_image(key, net, params, x, 4, kl_weight=0.0)
    np.testing.assert_allclose(analytic, (full + zero) / 2, rtol=1e-5)


def test_a_run_retrained_from_its_config_json_is_the_same_run(tmp_path, capsys):
    """aevb train --config RUN/config.json gives the same parameters bit for bit; a flag overrides the
    file; a missing, broken or unknown-keyed file is one usage line (exit 2) and nothing is written."""
    first = ["--runs-dir", str(tmp_path), "--no-progress"]
    assert run_cli(capsys, "train", *tiny_flags(epochs=2, hidden="12,6", activation="elu", optimizer="adagrad"),
                   "--name", "a",
                   *first)[0] == 0
    config_file = str(tmp_path / "a" / files.CONFIG)
    assert run_cli(capsys, "train", "--config", config_file, "--name", "b", *first)[0] == 0
    assert _leaves_equal(trained.restore(tmp_path / "a")[1], trained.restore(tmp_path / "b")[1])
    assert run_cli(capsys, "train", "--config", config_file, "--epochs", "1", "--name", "c", *first)[0] == 0
    c = pipeline.load(tmp_path / "c").config
    assert c.epochs == 1 and c.hidden == "12,6" and c.activation == "elu" and c.optimizer == "adagrad"
    (tmp_path / "broken.json").write_text('{"epochs": 2,')
    (tmp_path / "unknown.json").write_text('{"epochs": 2, "hiden": "3"}')
    (tmp_path / "sweep.json").write_text('{"settings": {"epochs": 2}, "vary": {"latent_dim": [2, 3]}}')
    for name, message in [("missing.json", "cannot read the config file"), ("broken.json", "is not JSON"),
                          ("unknown.json", "unknown settings hiden"), ("sweep.json", "varies settings")]:
        code, _, err = run_cli(capsys, "train", "--config", str(tmp_path / name), "--name", "d", *first)
        assert code == 2 and message in err and err.count("\n") <= 3, err
    assert not (tmp_path / "d").exists()


def test_a_sweep_file_lists_points_that_are_not_one_product(tmp_path, capsys):
    config = tiny(epochs=1)
    settings = {name: getattr(config, name) for name in ("dataset", "n_train", "n_test", "hidden_dim", "batch_size",
                                                         "epochs", "eval_samples", "iwae_k", "log_px_every",
                                                         "ais_images")}  # without it, AIS of 1000 images
    settings["latent_dim"] = 3  # no exact evaluation (Dz = 2 only) and, with ais_images 0, no AIS: quick
    (tmp_path / "s.json").write_text(json.dumps({"settings": settings, "seeds": [0, 1], "vary": [
        {"objective": ["elbo"], "num_samples": [1]}, {"objective": ["iwae"], "num_samples": [3]}]}))
    code, out, err = run_cli(capsys, "sweep", "s", "--config", str(tmp_path / "s.json"), "--runs-dir",
                             str(tmp_path), "--no-progress")
    assert code == 0, err
    sweep = json.loads((tmp_path / "s" / files.SWEEP).read_text())
    assert sweep["points"] == ["objective=elbo_num_samples=1", "objective=iwae_num_samples=3"]
    assert sweep["seeds"] == [0, 1]
    run = pipeline.load(tmp_path / "s" / "objective=iwae_num_samples=3" / "seed-1")
    assert run.config.objective == "iwae" and run.config.num_samples == 3 and run.config.seed == 1


def test_the_shipped_protocols_are_valid_sweeps_that_cite_their_source():
    assert protocols.names() == ["burda2016", "burda2016-two-layers", "cremer2018", "kingma2013-figure2",
                                 "tomczak2018"]
    for name in protocols.names():
        protocol = protocols.load(name)
        assert {"paper", "where", "setup"} <= set(protocol["source"]) and protocol["differences"]
        for budget in ("short", "full"):
            points, names, _ = sweeps.sweep_points(reproduce.grid(name, budget))
            configs = [Config(**point) for point in points]
            assert len(set(names)) == len(points)
            for published in protocol["published"]:  # every published number belongs to one point
                assert sum(all(getattr(c, k) == v for k, v in published["point"].items()) for c in configs) == 1
    burda = [Config(**p) for p in sweeps.sweep_points(reproduce.grid("burda2016", "full"))[0]]
    assert {(c.objective, c.num_samples) for c in burda} == {("elbo", 1), ("iwae", 5), ("iwae", 50)}
    assert all(c.epochs == 3280 and c.hidden == "200,200" and c.latent_dim == 50 and c.binarization == "dynamic"
               and c.iwae_k == 5000 and c.n_train == 60000 and c.adam_eps == 1e-4 for c in burda)
    two = [Config(**p) for p in sweeps.sweep_points(reproduce.grid("burda2016-two-layers", "full"))[0]]
    assert {(c.objective, c.num_samples) for c in two} == {("elbo", 1), ("iwae", 5), ("iwae", 50)}
    assert all(c.latent_dim == 150 and c.top == "50:100,100" and c.hidden == "200,200" and c.epochs == 3280
               for c in two)
    vamp = [Config(**p) for p in sweeps.sweep_points(reproduce.grid("tomczak2018", "full"))[0]]
    assert [c.prior for c in vamp] == ["standard", "vamp:500"] and all(
        c.latent_dim == 40 and c.hidden == "300,300" and c.kl_warmup == 100 and c.iwae_k == 5000 for c in vamp)
    assert all((c.architecture, c.activation, c.optimizer) == ("gated", "linear", "adam-normgrad") for c in vamp)
    kingma = [Config(**p) for p in sweeps.sweep_points(reproduce.grid("kingma2013-figure2", "full"))[0]]
    assert sorted(c.latent_dim for c in kingma) == [3, 5, 10, 20, 200]
    assert all(c.optimizer == "adagrad" and c.epochs * 60000 == pytest.approx(1e8, rel=1e-3) for c in kingma)
    for budget, epochs in (("short", 13), ("full", 3280)):  # the budget's vary shortens the z = 50 grid alone
        cremer = [Config(**p) for p in sweeps.sweep_points(reproduce.grid("cremer2018", budget))[0]]
        small = {(c.dataset, c.posterior) for c in cremer if c.latent_dim == 2 and c.epochs == 100}
        assert small == {(d, f) for d in ("mnist", "fashion-mnist")
                         for f in ("gaussian", "full-gaussian", "planar:8", "coupling:4")}
        large = [c for c in cremer if c.latent_dim == 50]
        assert len(large) == 4 and all(c.epochs == epochs and c.hidden == "200,200" and c.activation == "elu"
                                       and c.lr_schedule == "burda" and c.kl_warmup > 0 for c in large)


def test_a_protocol_of_gaps_gives_each_familys_gaps_from_its_runs(tmp_path, capsys, monkeypatch, reported_run):
    """A protocol with "gaps": its sweep is asked for the exact evaluation's extras (a sweep's points otherwise leave
    the gap decomposition out), and its page gives, per point, the family, log p(x), ELBO(q) and both pairs of gaps as
    the run's summary holds them (the session's reported run, made by aevb run: a real summary), and which gap is the
    larger in how many."""
    import shutil

    folder = tmp_path / "protocols"
    folder.mkdir()
    (folder / "families.json").write_text(json.dumps({
        "title": "Families", "measure": "test_log_px", "measure_name": "log p(x)", "gaps": True,
        "source": {"paper": "Nobody (2026).", "where": "Table 1", "setup": "one epoch"},
        "settings": {"dataset": SYNTHETIC.name}, "vary": [{"posterior": ["gaussian"]}], "published": [],
        "curves": "no numbers", "budgets": {"full": {"settings": {}, "note": "1 epoch"},
                                            "short": {"settings": {}, "note": "1 epoch", "vary": [{}]}},
        "differences": ["none"]}))
    monkeypatch.setattr(protocols, "FOLDER", folder)
    point = tmp_path / "reproduce-families-short" / "posterior=gaussian"
    shutil.copytree(reported_run, point)
    asked = {}

    def sweep(grid, sweep_dir, seeds, data_dir, progress, devices, extras=False):  # the points are trained already
        asked["extras"] = extras
        return [point]

    monkeypatch.setattr(pipeline, "sweep", sweep)
    code, out, err = run_cli(capsys, "reproduce", "families", "--runs-dir", str(tmp_path), "--no-progress")
    assert code == 0 and asked == {"extras": True}, err
    page = (tmp_path / "reproduce-families-short" / reproduce.PAGE).read_text()
    assert "Where the ELBO's gap comes from" in page
    assert "On test images the amortization gap is the larger one in 1 of the 1 evaluated runs." in page
    g = records.read_summary(point)["gap_decomposition"]["test"]
    assert "family" not in g  # the factorized Gaussian: its own q* is q*, both pairs of columns the same numbers
    for value in (g["log_px"], g["elbo_encoder"], g["approximation_gap"], g["amortization_gap"]):
        assert f"{value:.2f}" in page
    rows = {side: re.search(f"<td>{side}</td>(.*?)</tr>", page).group(1) for side in ("test", "training")}
    assert rows["test"].count(f"{g['approximation_gap']:.2f} &plusmn;") == 2
    # The training images' gaps in a row of their own (at Dz = 2 the exact decomposition has both sides).
    t = records.read_summary(point)["gap_decomposition"]["train"]
    assert "<td>training</td>" in page and "On training images the amortization gap is the larger one in" in page
    assert rows["training"].count(f"{t['amortization_gap']:.2f} &plusmn; {t['amortization_gap_se']:.2f}") == 2


def test_reproduce_puts_the_papers_numbers_beside_ours(tmp_path, capsys, monkeypatch):
    """A protocol on the synthetic data, with a title and a label a user could have written with HTML in
    it: the page gives the paper's number, ours, their difference, the budget, and escapes the text."""
    folder = tmp_path / "protocols"
    folder.mkdir()
    config = tiny(epochs=2)
    settings = {name: getattr(config, name) for name in ("dataset", "n_train", "n_test", "hidden_dim", "batch_size",
                                                         "eval_samples", "iwae_k", "log_px_every", "ais_images")}
    (folder / "toy.json").write_text(json.dumps({
        "title": "A <b>toy</b> paper", "measure": "test_iwae", "measure_name": "IWAE, K = 10",
        "source": {"paper": "Nobody (2026).", "where": "Table 9", "setup": "two epochs"},
        "settings": settings, "vary": {"latent_dim": [3, 4]},
        "published": [{"point": {"latent_dim": 3}, "label": "Dz = 3 <script>", "value": -50.0}],
        "budgets": {"full": {"settings": {"epochs": 2}, "note": "2 epochs"},
                    "short": {"settings": {"epochs": 1}, "note": "1 of 2 epochs"}},
        "differences": ["none & all"]}))
    monkeypatch.setattr(protocols, "FOLDER", folder)
    code, out, err = run_cli(capsys, "reproduce", "toy", "--runs-dir", str(tmp_path), "--no-progress")
    assert code == 0, err
    page = (tmp_path / "reproduce-toy-short" / reproduce.PAGE).read_text()
    assert "A &lt;b&gt;toy&lt;/b&gt; paper" in page and "Dz = 3 &lt;script&gt;" in page and "<script>" not in page
    assert "none &amp; all" in page and "the budget: 1 of 2 epochs" in page
    ours = records.read_summary(tmp_path / "reproduce-toy-short" / "latent_dim=3")["test_iwae"]
    assert f"{ours:.2f}" in page and f"{ours + 50.0:.2f}" in page and "-50.00" in page
    assert f"Dz = 3 <script>: test_iwae {ours:.2f}" in out and "(paper -50.00), 1 epochs" in out
    code, _, err = run_cli(capsys, "reproduce", "nothing", "--runs-dir", str(tmp_path))
    assert code == 2 and "unknown protocol 'nothing'; choose from toy" in err


def test_a_protocols_page_shows_its_companions_points_as_far_as_they_have_run(tmp_path, capsys, monkeypatch,
                                                                              reported_run):
    """burda2016's page shows its two-layer companion's points (a protocol of their own, so that burda2016's folders
    keep their names): read from the companion's sweep at the same budget where it has run, its measure as the run's
    summary holds it; nothing of it is trained; a companion that has not run adds nothing."""
    import shutil

    folder = tmp_path / "protocols"
    folder.mkdir()
    common = {"measure": "test_log_px", "measure_name": "log p(x)", "source": {"paper": "P.", "where": "T",
                                                                              "setup": "s"},
              "settings": {"dataset": SYNTHETIC.name}, "published": [], "curves": "none",
              "budgets": {"full": {"settings": {}, "note": "n"}, "short": {"settings": {}, "note": "n"}},
              "differences": ["none"]}
    (folder / "main.json").write_text(json.dumps({**common, "title": "Main", "vary": {"seed": [0]},
                                                  "companions": ["side", "unrun"]}))
    (folder / "side.json").write_text(json.dumps({**common, "title": "Side <two layers>", "vary": {"seed": [0]}}))
    (folder / "unrun.json").write_text(json.dumps({**common, "title": "Never run", "vary": {"seed": [0]}}))
    monkeypatch.setattr(protocols, "FOLDER", folder)
    main_point = tmp_path / "reproduce-main-short" / "run"
    shutil.copytree(reported_run, main_point)
    side = tmp_path / "reproduce-side-short"
    shutil.copytree(reported_run, side / "run")
    (side / "sweep.json").write_text(json.dumps({"grid": {"seed": [0]}, "varied": [], "seeds": None,
                                                 "points": ["run", "not-yet"]}))
    trained_here = []

    def sweep(grid, sweep_dir, seeds, data_dir, progress, devices, extras=False):
        trained_here.append(Path(sweep_dir).name)
        return [main_point]

    monkeypatch.setattr(pipeline, "sweep", sweep)
    code, _, err = run_cli(capsys, "reproduce", "main", "--runs-dir", str(tmp_path), "--no-progress")
    assert code == 0 and trained_here == ["reproduce-main-short"], err
    page = (tmp_path / "reproduce-main-short" / reproduce.PAGE).read_text()
    value = records.read_summary(reported_run)["test_log_px"]
    assert "Also measured here: Side &lt;two layers&gt;" in page and "aevb reproduce side" in page
    assert page.count(f"{value:.2f} &plusmn;") == 2 and str(side / "run") in page  # its own row and the side's
    assert "Never run" not in page and "not-yet" not in page


def test_a_points_log_px_is_its_best_estimate_exact_or_else_ais_and_the_row_says_which(tmp_path, reported_run):
    """A protocol measured by log p(x) whose points are of Dz = 2 (exact) and of another Dz (AIS only, as cremer2018's
    z = 50 grid): each row's number is the exact value where the run has it, else AIS's, named with its images; a
    point with neither is not evaluated (None), not a number of another kind."""
    import shutil

    exact, by_ais, neither = (tmp_path / name for name in ("exact", "ais", "neither"))
    for point in (exact, by_ais, neither):
        shutil.copytree(reported_run, point)
    summary = records.read_summary(reported_run)
    for point, kept in ((by_ais, {"test_log_px_ais": -123.456, "test_log_px_ais_se": 0.789}), (neither, {})):
        changed = {k: v for k, v in summary.items() if k not in ("test_log_px", "test_log_px_se")} | kept
        (point / "summary.json").write_text(json.dumps(changed))
    protocol = {"measure": "test_log_px", "published": [], "label": ["latent_dim"]}
    first, second, third = reproduce.rows(protocol, [exact, by_ais, neither])
    assert (first["ours"], first["se"]) == (summary["test_log_px"], summary["test_log_px_se"]) and first["by"] == ""
    ais_images = Config.from_json((reported_run / "config.json").read_text(), data=False).ais_images
    assert (second["ours"], second["se"]) == (-123.456, 0.789)
    assert second["by"] == f"by AIS, first {ais_images} test images" and "AIS" not in second["label"]
    assert third["ours"] is None and math.isnan(third["se"])
    with_test_iwae = reproduce.rows({**protocol, "measure": "test_iwae"}, [by_ais])[0]
    assert with_test_iwae["ours"] == summary["test_iwae"] and with_test_iwae["by"] == ""
