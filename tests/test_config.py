import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import tiny, tiny_flags

from aevb import cli, pipeline
from aevb.config import Config
from aevb.errors import ConfigError
from aevb.model import layers, networks, probability
from aevb.runs import files, records
from aevb.training import trained


def test_json_round_trip_and_unknown_keys():
    config = tiny(latent_dim=5, learning_rate=0.01, objective="elbo-analytic-kl", debug=True, test_split="official")
    assert Config.from_json(config.to_json()) == config
    with pytest.raises(ConfigError, match="unknown config keys: \\['kl'\\]"):
        Config.from_json(json.dumps({**json.loads(config.to_json()), "kl": "mc"}))


@pytest.mark.parametrize("settings, message", [
    ({"epochs": "10"}, "epochs must be a whole number, not '10'"),
    ({"epochs": 2.5}, "epochs must be a whole number"),
    ({"epochs": True}, "epochs must be a whole number"),
    ({"debug": 1}, "debug must be true or false"),
    ({"learning_rate": 0.0}, "learning_rate must be greater than 0"),
    ({"learning_rate": float("inf")}, "learning_rate must be a finite number"),
    ({"latent_dim": 0}, "latent_dim must be at least 1"),
    ({"seed": 2**32}, "seed must be at most 4294967295"),
    ({"objective": "kl"}, "objective is one of elbo, elbo-analytic-kl"),
    ({"test_split": "random"}, "test_split is one of assignment, official"),
])
def test_bad_settings_are_refused_with_the_setting_named(settings, message):
    with pytest.raises(ConfigError, match=message):
        Config(**settings)


def test_a_whole_number_learning_rate_is_a_number():
    assert Config(learning_rate=1).learning_rate == 1.0 and isinstance(Config(learning_rate=1).learning_rate, float)


def _relu_init(key, data_dim, config):
    k1, k2, k3, k4 = jax.random.split(key, 4)
    layer = layers.dense_init
    return {"encoder": {"hidden": layer(k1, data_dim, config.hidden_dim),
                        "out": layer(k2, config.hidden_dim, 2 * config.latent_dim)},
            "decoder": {"hidden": layer(k3, config.latent_dim, config.hidden_dim),
                        "out": layer(k4, config.hidden_dim, data_dim)}}


def _relu_encode(phi, x):
    out = layers.dense(phi["out"], jax.nn.relu(layers.dense(phi["hidden"], x)))
    return tuple(jnp.split(out, 2, axis=-1))


def _relu_decode(theta, z):
    return layers.dense(theta["out"], jax.nn.relu(layers.dense(theta["hidden"], z)))


def test_a_new_network_is_one_table_entry(monkeypatch, tmp_path, capsys):
    # A builder (activation, image shape, posterior family) -> Network; this one has its own nonlinearity, ignores
    # the first two and gives the plain (mean, log_std) pair (the factorized Gaussian).
    monkeypatch.setitem(networks.NETWORKS, "relu", lambda activation, image_shape, family: networks.Network(
        _relu_init, _relu_encode, _relu_decode))
    argv = ["--runs-dir", str(tmp_path), "--name", "relu"]
    assert cli.main(["train", *tiny_flags(epochs=3), "--architecture", "relu", "--no-progress", *argv]) == 0
    assert cli.main(["evaluate", "--no-progress", *argv]) == 0
    assert cli.main(["report", *argv]) == 0
    run = pipeline.load(tmp_path / "relu")
    assert run.config.architecture == "relu"
    summary = records.read_summary(run.path)
    assert np.isfinite(summary["test_elbo"]) and summary["test_iwae"] >= summary["test_elbo"] - 3 * summary[
        "test_elbo_se"]
    # The explorer's JavaScript implements the mlp decoder only: the report says so instead.
    assert "cannot run the decoder of this model" in files.report_path(run.path).read_text()
    assert "the relu networks" in files.report_path(run.path).read_text()


def test_a_new_objective_is_one_table_entry(monkeypatch, tmp_path):
    calls = []

    def doubled_elbo(key, net, params, x, num_samples):  # the ELBO's gradient, twice as large
        calls.append(x.shape)
        return 2.0 * probability.OBJECTIVES["elbo"](key, net, params, x, num_samples)

    monkeypatch.setitem(probability.OBJECTIVES, "doubled", doubled_elbo)
    result = pipeline.train(tiny(objective="doubled", epochs=2), tmp_path / "d", progress=False)
    assert result["status"] == "done" and calls and calls[0][1] == 144  # traced once, with (B, D) batches
    assert trained.restore(tmp_path / "d")[0].objective == "doubled"
    assert dataclasses.replace(tiny(), objective="doubled").objective == "doubled"


def test_stored_settings_read_without_their_data_are_still_checked():
    """Config.from_json(..., data=False), for pages that only show a run (the comparison): a dataset
    that is gone is kept as stored; every other setting is still checked."""
    stored = json.loads(Config().to_json())
    gone = json.dumps({**stored, "dataset": "npz:/nowhere/gone.npz"})
    with pytest.raises(ConfigError):
        Config.from_json(gone)
    assert Config.from_json(gone, data=False).dataset == "npz:/nowhere/gone.npz"
    with pytest.raises(ConfigError, match="hidden_dim"):
        Config.from_json(json.dumps({**stored, "dataset": "npz:/nowhere/gone.npz", "hidden_dim": 0}), data=False)
