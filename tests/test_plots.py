import re

import jax
import numpy as np
import pytest
from conftest import float64_log_joint, float64_tree, tiny, trained
from scipy import special, stats

from aevb import cli, pipeline
from aevb.model import densities, probability
from aevb.runs import files, records
from aevb.views import drawing, exact_plots, plots

SHAPE = (12, 12)  # the synthetic dataset's images


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return trained(tmp_path_factory, epochs=5)


def _image_axes(figure):
    return [ax for ax in figure.axes if ax.images]


def _decoded(run, z):
    """Bernoulli means in float64 numpy from the decoder's weights: an independent reference."""
    t = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float64), run.params["decoder"])
    return special.expit(np.tanh(np.asarray(z, np.float64) @ t["hidden"]["weight"] + t["hidden"]["bias"])
                         @ t["out"]["weight"] + t["out"]["bias"])


def test_samples_layout_and_values(run):
    figure = drawing.figure("samples", run, [])
    _, means, binary = probability.sample(jax.random.fold_in(jax.random.PRNGKey(0), 1), run.net,
                                          run.params["decoder"], 2, 10)
    assert len(_image_axes(figure)) == 20
    shown = [ax.images[0].get_array() for ax in figure.axes]
    np.testing.assert_allclose(shown[0], np.asarray(means[0]).reshape(SHAPE))
    np.testing.assert_array_equal(shown[10], np.asarray(binary[0]).reshape(SHAPE))
    assert set(np.unique(np.asarray(binary))) <= {0.0, 1.0}
    assert all(ax.images[0].get_cmap().name == "gray" for ax in figure.axes)


def test_latent_scatter_holds_every_training_image(run):
    z = drawing.encode_means(run, run.split.x_train)
    figure = drawing.figure("latent", run, [])
    points = np.concatenate([c.get_offsets() for c in figure.axes[0].collections])
    assert len(points) == len(run.split.x_train)
    np.testing.assert_allclose(np.sort(points[:, 0]), np.sort(z[:, 0]), rtol=1e-6)
    legend = figure.axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == list(run.split.dataset.class_names)
    assert figure.axes[0].get_xlabel() == "z1"


def test_interpolation_endpoints_decode_the_encodings(run):
    z_a, z_b = np.array([1.0, -2.0]), np.array([0.5, 3.0])
    np.testing.assert_allclose(plots.interpolate(z_a, z_b, 0.25), [0.625, 1.75])  # 0.25 of the way back from b
    pairs = drawing.choose_pairs(run.split.y_train, jax.random.PRNGKey(4))
    assert len(pairs) == 3 and all(run.split.y_train[i] != run.split.y_train[j] for i, j in pairs)
    figure = drawing.figure("interpolate", run, [], pairs=[(0, 1), (5, 7)])
    axes = _image_axes(figure)
    assert len(axes) == 2 * 12  # per pair: image a, 10 steps, image b
    ends = drawing.encode_means(run, run.split.x_train[[0, 1]])
    np.testing.assert_allclose(axes[1].images[0].get_array(), _decoded(run, ends[0]).reshape(SHAPE), atol=1e-5)
    np.testing.assert_allclose(axes[10].images[0].get_array(), _decoded(run, ends[1]).reshape(SHAPE), atol=1e-5)
    np.testing.assert_array_equal(axes[0].images[0].get_array(), run.split.x_train[0].reshape(SHAPE))


def test_manifold_grid_is_normal_quantiles(run):
    figure = drawing.figure("manifold", run, [])
    canvas = figure.axes[0].images[0].get_array()
    assert canvas.shape == (20 * 12, 20 * 12)
    grid = stats.norm.ppf((np.arange(20) + 0.5) / 20)
    # Bottom-left block is z = (grid[0], grid[0]); top-left is z = (grid[0], grid[-1]); top-right (grid[-1], grid[-1]).
    np.testing.assert_allclose(canvas[-12:, :12], _decoded(run, [grid[0], grid[0]]).reshape(SHAPE), atol=2e-4)
    np.testing.assert_allclose(canvas[:12, :12], _decoded(run, [grid[0], grid[-1]]).reshape(SHAPE), atol=2e-4)
    np.testing.assert_allclose(canvas[:12, -12:], _decoded(run, [grid[-1], grid[-1]]).reshape(SHAPE), atol=2e-4)


def test_other_latent_dimensions_say_so_and_do_not_crash(tmp_path):
    pipeline.train(tiny(epochs=1, latent_dim=3), tmp_path / "r", progress=False)
    run = pipeline.load(tmp_path / "r")
    title = drawing.figure("latent", run, []).axes[0].get_title()
    assert "PCA" in title and "Dz = 3" in title
    assert "needs Dz = 2" in drawing.figure("manifold", run, []).axes[0].texts[0].get_text()
    points = np.random.default_rng(0).normal(size=(100, 3)) @ np.array([[3.0, 1, 0], [0, 1, 1], [1, 0, 2]])
    projected, share = plots.pca_2d(points)
    eigenvalues = np.sort(np.linalg.eigvalsh(np.cov(points.T)))[::-1]  # the variances along the principal axes
    assert share == pytest.approx(eigenvalues[:2].sum() / eigenvalues.sum(), rel=1e-6)
    np.testing.assert_allclose(np.var(projected, axis=0, ddof=1), eigenvalues[:2], rtol=1e-6)


def test_standard_normal_quantile_matches_scipy():
    p = np.array([1e-6, 0.01, 0.3, 0.5, 0.8, 0.999])
    np.testing.assert_allclose(densities.standard_normal_quantile(p), stats.norm.ppf(p), atol=2e-5)


def test_plot_command_writes_every_figure(run, capsys):
    argv = ["--runs-dir", str(run.path.parent), "--name", run.name]
    assert cli.main(["plot", *argv, "--pairs", "0,1", "5,7"]) == 0
    for kind in plots.KINDS:
        assert files.figure_path(run.path, kind).stat().st_size > 5000
        assert files.figure_path(run.path, kind).with_suffix(".svg").is_file()
    for bad in (["nonsense"], ["interpolate", "--pairs", "0,600"]):
        with pytest.raises(SystemExit) as exit:
            cli.main(["plot", *bad, *argv])
        assert exit.value.code == 2


# ---- the figures of an evaluated run plot the run's own data -----------------------------------------


def test_the_curves_plot_the_metrics_log(reported_run):
    run, rows = pipeline.load(reported_run), records.read_metrics(reported_run)
    figure = drawing.figure("curves", run, rows)
    curves, tracked, kl = figure.axes  # the ELBO per epoch; the tracked log p(x) and ELBO; their gap
    epochs = [row["epoch"] for row in rows]
    for line, key in zip(curves.lines, ("train_elbo", "test_elbo"), strict=True):
        np.testing.assert_array_equal(line.get_xdata(), epochs)
        np.testing.assert_array_equal(line.get_ydata(), [row[key] for row in rows])
    marked = [row for row in rows if "tracked" in row]
    assert [row["epoch"] for row in marked] == epochs  # epochs 1-10 are all tracked
    log_px, elbo = (np.array([row["tracked"][key] for row in marked]) for key in ("log_px", "elbo"))
    np.testing.assert_array_equal(tracked.lines[0].get_ydata(), log_px)
    np.testing.assert_array_equal(tracked.lines[1].get_ydata(), elbo)
    np.testing.assert_allclose(kl.lines[0].get_ydata(), log_px - elbo)
    assert np.all(log_px > elbo)  # the ELBO lies below log p(x) at every tracked epoch


def test_the_bounds_figure_plots_the_bounds_against_k(reported_run):
    run, summary = pipeline.load(reported_run), records.read_summary(reported_run)
    per_image, bounds = records.read_per_image(reported_run), summary["bounds_vs_k"]
    left, right = drawing.figure("bounds", run, []).axes
    def data(ax, i, axis):  # the i-th error-bar series's plotted points
        return np.asarray(getattr(ax.containers[i].lines[0], f"get_{axis}data")(), np.float64)

    for i, name in enumerate(("iwae", "defensive")):
        np.testing.assert_array_equal(data(left, i, "x"), bounds["k"])
        np.testing.assert_allclose(data(left, i, "y"), bounds[name])
        np.testing.assert_allclose(data(right, i, "y"), bounds[name + "_gap"])
    exact_line = next(line for line in left.lines if line.get_label().startswith("exact log p(x)"))
    # The horizontal line is the mean exact log p(x) of the images the bounds were measured on.
    assert exact_line.get_ydata()[0] == pytest.approx(per_image["test_log_px"][: bounds["images"]].mean(), abs=1e-4)
    assert np.all(np.asarray(bounds["iwae"]) <= exact_line.get_ydata()[0] + 0.05)  # lower bounds, all of them


def test_the_gaps_histogram_counts_every_test_image(reported_run):
    run, per_image = pipeline.load(reported_run), records.read_per_image(reported_run)
    ax = drawing.figure("gaps", run, []).axes[0]
    edges = [patch.get_x() for patch in ax.patches] + [ax.patches[-1].get_x() + ax.patches[-1].get_width()]
    counts = [patch.get_height() for patch in ax.patches]
    gaps = per_image["test_log_px"] - per_image["test_iwae"]
    np.testing.assert_array_equal(counts, np.histogram(gaps, edges)[0])
    assert sum(counts) == len(run.split.x_test)


def test_the_posterior_panels_are_the_true_posterior_on_their_grid(reported_run):
    """Each panel's grid against log p(x, z) in float64 numpy at the same points, for the images the
    panels name; the best-fitted panel is the test image of the highest exact log p(x)."""
    run, per_image = pipeline.load(reported_run), records.read_per_image(reported_run)
    panels = drawing.posterior_panels(run, per_image)
    shown = [int(re.search(r"#(\d+)", panel["title"]).group(1)) for panel in panels]
    assert shown[0] == int(np.argmax(per_image["test_log_px"]))
    for i, panel in zip(shown, panels, strict=True):
        axis1, axis2, log_joint, _ = panel["grid"]
        z = np.stack(np.meshgrid(axis1, axis2, indexing="ij"), -1).reshape(-1, 2).astype(np.float32)
        reference = float64_log_joint(float64_tree(run.params["decoder"]), run.split.x_test[i : i + 1], z)[0]
        np.testing.assert_allclose(log_joint.ravel(), reference, atol=2e-3)
    figure = exact_plots.posteriors_figure(panels)
    assert [ax.get_title() for ax in figure.axes if ax.get_title()] == [p["title"] for p in panels]
