import jax
import numpy as np
import pytest
from conftest import tiny
from scipy import special, stats

from aevb import cli, pipeline
from aevb.model import densities, probability
from aevb.runs import files
from aevb.views import drawing, plots

SHAPE = (12, 12)  # the synthetic dataset's images


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("runs") / "r"
    pipeline.train(tiny(epochs=5), run_dir, progress=False)
    return pipeline.load(run_dir)


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
