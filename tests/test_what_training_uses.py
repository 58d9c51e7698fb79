"""What training and the report use, seen from outside (issue 48): the images each epoch trains on, the KL
weight each step uses, where the analytic-KL ELBO puts the warm-up weight, and every user string on the page.
Each test fails on a realistic bug that the formula tests alone let through (named in its docstring)."""

import html
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import tiny

from aevb import pipeline
from aevb.data import splits
from aevb.model import probability
from aevb.runs import records
from aevb.training import compiled
from aevb.views import report

GREY = 64  # every pixel's byte: dynamic binarization draws it as 1 with probability 64/255


@pytest.fixture(scope="module")
def grey_npz(tmp_path_factory):
    path = tmp_path_factory.mktemp("grey") / "grey.npz"
    np.savez(path, train_images=np.full((400, 12, 12), GREY, np.uint8))
    return f"npz:{path}"


def _spy(name, monkeypatch, value):
    """A training 'objective' that reports value(x, kl_weight) per image: the epoch's mean of it lands in
    metrics.jsonl as train_elbo. It does not depend on the parameters (their gradient is zero), so only what
    the loop feeds it is measured."""
    def objective(key, net, params, x, num_samples, kl_weight=None):
        return value(x, kl_weight)

    monkeypatch.setitem(probability.OBJECTIVES, name, objective)


def test_each_epoch_trains_on_a_fresh_bernoulli_draw_of_the_grey_levels(grey_npz, tmp_path, monkeypatch):
    """Bugs caught: training on the fixed thresholded images (every pixel 0 here), on the grey levels themselves
    (exactly 64/255 every epoch), or on one draw reused every epoch (the same fraction every epoch). Reference:
    the fraction of ones in an epoch's 300 x 144 pixels is Binomial(43200, 64/255) / 43200, SD 0.0021."""
    _spy("pixel-mean", monkeypatch, lambda x, weight: jnp.mean(x, axis=-1))
    config = tiny(dataset=grey_npz, n_train=300, n_test=100, objective="pixel-mean", binarization="dynamic", epochs=4)
    pipeline.train(config, tmp_path / "r", progress=False)
    fractions = np.array([row["train_elbo"] for row in records.read_metrics(tmp_path / "r")])
    p = GREY / 255
    sd = np.sqrt(p * (1 - p) / (300 * 144))
    assert np.all(np.abs(fractions - p) < 5 * sd), (fractions, p)
    assert len(set(fractions.tolist())) == 4, fractions  # a new draw each epoch
    assert np.all(np.abs(fractions - p) > 1e-7), fractions  # not the grey levels themselves


def test_the_kl_warmup_weight_rises_across_epochs_and_reaches_one(tmp_path, monkeypatch):
    """Bug caught: a warm-up whose step count restarts each epoch (it would never reach 1). Reference: step s
    (0-based, over the whole run) has weight min(1, s / (2 epochs x 6 steps)); an epoch's mean is the mean of
    its six steps' weights."""
    _spy("kl-weight", monkeypatch, lambda x, weight: jnp.full(x.shape[0], weight))
    config = tiny(objective="kl-weight", kl_warmup=2, n_train=300, epochs=4)  # batch 50: 6 steps an epoch
    pipeline.train(config, tmp_path / "r", progress=False)
    means = [row["train_elbo"] for row in records.read_metrics(tmp_path / "r")]
    expected = [np.mean(np.minimum(1.0, np.arange(6 * e, 6 * e + 6) / 12)) for e in range(4)]
    np.testing.assert_allclose(means, expected, rtol=1e-6)
    assert expected[2] == expected[3] == 1.0


def test_the_analytic_kl_elbo_weighs_the_kl_not_the_likelihood():
    """Bug caught: w E[log p(x|z)] - KL instead of E[log p(x|z)] - w KL (both are linear in w, so an identity
    between weights cannot tell them apart). Reference: the closed-form KL in float64 numpy, the expected
    log-likelihood at the same draws."""
    config = tiny()
    params, _ = compiled.init_state(config)
    net, key = config.network, jax.random.PRNGKey(5)
    x = jnp.asarray(splits.load(config).x_train[:6])
    mean, log_std = (np.asarray(a, np.float64) for a in net.encode(params["encoder"], x))
    kl = 0.5 * np.sum(mean**2 + np.exp(2 * log_std) - 1 - 2 * log_std, axis=-1)
    z = np.asarray(jax.random.normal(key, (3,) + mean.shape)) * np.exp(log_std) + mean  # the estimator's draws
    expected_log_likelihood = np.mean(np.asarray(probability.log_likelihood(net, params["decoder"], x, jnp.asarray(
        z, jnp.float32)), np.float64), axis=0)
    for weight in (0.0, 0.3, 1.0):
        got = probability.elbo_analytic_kl_per_image(key, net, params, x, 3, kl_weight=weight)
        np.testing.assert_allclose(got, expected_log_likelihood - weight * kl, rtol=1e-4, atol=1e-3)


HOSTILE = ["<script>alert('class 0')</script>", '"><img src=x onerror=alert(1)>', "<b onmouseover=alert(2)>bold</b>",
           "a & b <!--", "</td></tr></table><svg onload=alert(4)>"]


@pytest.mark.parametrize("first", range(len(HOSTILE)))
def test_every_user_string_reaches_the_page_escaped_whatever_class_is_chosen(tmp_path, first):
    """Bug caught: the completion table's class name unescaped (a test whose completion picks an image of a
    harmless class misses it). Every mask's completion is given an image of each hostile class in turn, and the
    run and dataset names are hostile too: no raw markup on the page, each string there escaped."""
    masks = ("top", "bottom", "left", "right", "random")
    completion = {mask: {"index": i, "label": (first + i) % len(HOSTILE), "log_p_hidden_under_q_predictive": -1.0,
                         "log_p_hidden_under_prior_predictive": -2.0, "hidden_pixels": 3}
                  for i, mask in enumerate(masks)}
    dataset = types.SimpleNamespace(class_names=HOSTILE, display_name="<i>data</i>", image_shape=(12, 12))
    split = types.SimpleNamespace(dataset=dataset, description="<u>made</u>", binarization="<s>b</s>")
    page = report.render("<em>run</em>", tiny(), {"completion": completion}, split, lambda name: tmp_path / "none.png",
                         [("<q>?</q>", True, "<r>because</r>")], None, "<n>no explorer</n>")
    for text in HOSTILE + ["<i>data</i>", "<u>made</u>", "<s>b</s>", "<em>run</em>", "<q>?</q>", "<n>no explorer</n>"]:
        assert text not in page, text
    for label in {(first + i) % len(HOSTILE) for i in range(len(masks))}:
        assert html.escape(HOSTILE[label]) in page
