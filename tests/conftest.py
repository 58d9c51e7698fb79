import jax
import numpy as np
import pytest

from aevb import parallel
from aevb.config import Config
from aevb.data import datasets, splits
from aevb.evaluation import curves
from aevb.training import loop

# Silent broadcasting hides shape bugs: make rank promotion an error in every test.
jax.config.update("jax_numpy_rank_promotion", "raise")
# Two CPU devices, for the tests of several devices (aevb.parallel); the rest use the first, as ever.
jax.config.update("jax_num_cpu_devices", 2)

# Most tests run on a small synthetic dataset held in memory (no download): 12x12 images of
# discs in 4 classes, a shape other than MNIST's so that nothing can lean on 28x28.
SYNTHETIC = datasets.register(splits.synthetic())


def tiny(**settings):
    """A small config on the synthetic dataset: trains in a second or two."""
    values = {"dataset": SYNTHETIC.name, "n_train": 600, "n_test": 200, "hidden_dim": 32, "batch_size": 50,
              "epochs": 3, "eval_samples": 2, "iwae_k": 10, "log_px_every": 0, **settings}
    return Config(**values)


def tiny_flags(**settings):
    """tiny(...) as command-line flags."""
    config = tiny(**settings)
    return [arg for name in ("dataset", "n_train", "n_test", "hidden_dim", "batch_size", "epochs", "eval_samples",
                             "iwae_k", "log_px_every", *settings)
            for arg in ("--" + name.replace("_", "-"), str(getattr(config, name)))]


def train_run(config, run_dir, split, devices=parallel.ONE, **kwargs):
    """aevb.training.loop.train with the measures aevb.pipeline passes in (aevb.evaluation.curves)."""
    return loop.train(config, run_dir, split, curves.monitor(config, split.x_test, devices), devices=devices,
                      **kwargs)


def run_cli(capsys, *argv):
    """The aevb command in this process: (exit code, stdout, stderr)."""
    from aevb import cli

    try:
        code = cli.main(list(argv))
    except SystemExit as exit:
        code = exit.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="session")
def mnist():
    """The verified MNIST arrays (fetched once into the user's cache, then read from it)."""
    return datasets.load("mnist")[0].arrays


@pytest.fixture
def rng():
    return np.random.default_rng(0)
