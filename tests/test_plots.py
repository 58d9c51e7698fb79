
import jax
import numpy as np
import pytest
from scipy import stats

from aevb import cli, data, densities, plots, train
from aevb.config import Config


@pytest.fixture(scope="module")
def trained(mnist, tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "r"
    datasets = data.load_binarized_mnist(debug=True)
    config = Config(debug=True, epochs=5, batch_size=50)
    train.train(config, run, progress=False, datasets=datasets)
    _, params, _, _ = train.load_checkpoint(run)
    return run, config, params, datasets


def _image_axes(figure):
    return [ax for ax in figure.axes if ax.images]


def test_samples_layout_and_values(trained):
    _, config, params, _ = trained
    means, binary = plots.compute_samples(params, config.latent_dim, jax.random.PRNGKey(0))
    assert means.shape == binary.shape == (10, 784)
    assert means.min() >= 0 and means.max() <= 1
    assert set(np.unique(binary)) <= {0.0, 1.0}
    figure = plots.samples_figure(means, binary)
    assert len(_image_axes(figure)) == 20
    shown = [ax.images[0].get_array() for ax in figure.axes]
    np.testing.assert_allclose(shown[0], means[0].reshape(28, 28))
    np.testing.assert_array_equal(shown[10], binary[0].reshape(28, 28))
    assert all(ax.images[0].get_cmap().name == "gray" for ax in figure.axes)


def test_latent_scatter_holds_every_training_image(trained):
    _, _, params, (x_train, y_train, _, _) = trained
    z = plots.encode_means(params, x_train)
    figure = plots.latent_figure(z, y_train)
    points = np.concatenate([c.get_offsets() for c in figure.axes[0].collections])
    assert len(points) == len(x_train)
    np.testing.assert_allclose(np.sort(points[:, 0]), np.sort(z[:, 0]), rtol=1e-6)
    legend = figure.axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == [str(d) for d in range(10)]
    assert figure.axes[0].get_xlabel() == "z1"


def test_interpolation_endpoints_equal_the_encodings(trained):
    _, _, params, (x_train, y_train, _, _) = trained
    z_a, z_b = np.array([1.0, -2.0]), np.array([0.5, 3.0])
    np.testing.assert_array_equal(plots.interpolate(z_a, z_b, 1.0), z_a)
    np.testing.assert_array_equal(plots.interpolate(z_a, z_b, 0.0), z_b)
    pairs = plots.choose_pairs(y_train, jax.random.PRNGKey(4))
    assert len(pairs) == 3 and all(y_train[i] != y_train[j] for i, j in pairs)
    means, alphas, enc_a, enc_b = plots.compute_interpolations(params, x_train, pairs)
    assert means.shape == (3, 10, 784) and alphas[0] == 1.0 and alphas[-1] == 0.0
    np.testing.assert_allclose(enc_a, plots.encode_means(params, x_train[[i for i, _ in pairs]]), rtol=1e-6)
    np.testing.assert_allclose(means[:, 0], plots.probabilities(params["decoder"], enc_a), rtol=1e-5)
    np.testing.assert_allclose(means[:, -1], plots.probabilities(params["decoder"], enc_b), rtol=1e-5)
    assert means.min() >= 0 and means.max() <= 1
    figure = plots.interpolation_figure(x_train[[0, 1, 2]], x_train[[3, 4, 5]], means, alphas, [("a", "b")] * 3)
    assert len(_image_axes(figure)) == 3 * 12


def test_manifold_grid_is_normal_quantiles(trained):
    _, config, params, _ = trained
    images, grid = plots.compute_manifold(params, config.latent_dim)
    np.testing.assert_allclose(grid, stats.norm.ppf((np.arange(20) + 0.5) / 20), atol=1e-5)
    assert images.shape == (20, 20, 784) and images.min() >= 0 and images.max() <= 1
    figure = plots.manifold_figure(images, grid)
    canvas = figure.axes[0].images[0].get_array()
    assert canvas.shape == (560, 560)
    # Bottom-left block is z = (grid[0], grid[0]); top-left is z = (grid[0], grid[-1]).
    np.testing.assert_allclose(canvas[-28:, :28], images[0, 0].reshape(28, 28))
    np.testing.assert_allclose(canvas[:28, :28], images[0, -1].reshape(28, 28))


def test_other_latent_dimensions_say_so_and_do_not_crash(mnist):
    datasets = data.load_binarized_mnist(debug=True)
    config = Config(debug=True, epochs=1, batch_size=50, latent_dim=3)
    params = train.init_state(config)[0]
    figure = plots.latent_figure(plots.encode_means(params, datasets[0]), datasets[1])
    assert "PCA" in figure.axes[0].get_title() and "Dz = 3" in figure.axes[0].get_title()
    images, grid = plots.compute_manifold(params, 3)
    figure = plots.manifold_figure(images, grid)
    assert "needs Dz = 2" in figure.axes[0].texts[0].get_text()


def test_standard_normal_quantile_matches_scipy():
    p = np.array([1e-6, 0.01, 0.3, 0.5, 0.8, 0.999])
    np.testing.assert_allclose(densities.standard_normal_quantile(p), stats.norm.ppf(p), atol=2e-5)


def test_plot_command_writes_every_figure(trained, capsys):
    run, _, _, _ = trained
    code = cli.main(["plot", "--runs-dir", str(run.parent), "--name", run.name, "--pairs", "0,1", "5,7"])
    assert code == 0
    for kind in plots.KINDS:
        assert (run / "figures" / f"{kind}.png").stat().st_size > 5000
        assert (run / "figures" / f"{kind}.svg").is_file()
    with pytest.raises(SystemExit) as exit:
        cli.main(["plot", "nonsense", "--runs-dir", str(run.parent), "--name", run.name])
    assert exit.value.code == 2
    with pytest.raises(SystemExit) as exit:
        cli.main(["plot", "interpolate", "--pairs", "0,500", "--runs-dir", str(run.parent), "--name", run.name])
    assert exit.value.code == 2
