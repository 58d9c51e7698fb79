import jax
import numpy as np
import pytest

# Silent broadcasting hides shape bugs: make rank promotion an error in every test.
jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture(scope="session")
def mnist():
    """The verified MNIST uint8 arrays (fetched once into the user's cache, then read from it)."""
    from aevb import data

    arrays, _ = data.fetch_mnist()
    return arrays


@pytest.fixture
def rng():
    return np.random.default_rng(0)
