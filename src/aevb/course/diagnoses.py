"""What the autograder's checks share: random parameters and inputs, and the diagnoses of wrong answers
(not written, an error, a framework's distribution, a loop over the batch, a value or shape that differs,
and which typical wrong answer it equals). aevb.course.grading documents the student's functions."""

import inspect
import re

import jax
import jax.numpy as jnp
import numpy as np

from ..model import networks

IMAGE_SHAPE = (28, 28)  # the assignment's images; the checks also try smaller ones
NET = networks.build("mlp", "tanh")
# What the project's rule forbids: densities and samplers from a framework.
FRAMEWORK = re.compile(r"scipy\.stats|distrax|tfp\b|tensorflow_probability|numpyro|torch\.distributions|"
                       r"random\.(bernoulli|categorical)|\.logpdf\(|\.log_prob\(")
RTOL, ATOL = 1e-4, 1e-3  # float32 sums over 784 pixels


class Wrong(AssertionError):
    """A student function disagrees with aevb's; the message says how."""


# Drawn with numpy: a JAX draw compiles its sampler anew for each shape, seconds for all the checks.
def random_params(seed, data_dim=784, latent_dim=2, hidden_dim=16):
    """{"encoder": phi, "decoder": theta} shaped as aevb.model.networks.mlp makes them, with weights
    large enough that every pixel's logit matters: an error anywhere shows."""
    rng = np.random.default_rng(seed)

    def layer(n_in, n_out):
        return {"weight": jnp.asarray(rng.normal(0, 2 / np.sqrt(n_in), (n_in, n_out)), jnp.float32),
                "bias": jnp.asarray(rng.normal(0, 0.1, n_out), jnp.float32)}

    return {"encoder": {"hidden": layer(data_dim, hidden_dim), "out": layer(hidden_dim, 2 * latent_dim)},
            "decoder": {"hidden": layer(latent_dim, hidden_dim), "out": layer(hidden_dim, data_dim)}}


def inputs(seed, batch, latent_dim=2, data_dim=784):
    """z (batch, latent_dim) and binary x (batch, data_dim), the same for the same arguments."""
    rng = np.random.default_rng(1000 + seed)
    z = jnp.asarray(1.5 * rng.normal(size=(batch, latent_dim)), jnp.float32)
    return z, jnp.asarray(rng.uniform(size=(batch, data_dim)) < 0.3, jnp.float32)


# ---- shared diagnoses ---------------------------------------------------------------------------


def call(name, f, *args):
    try:
        return f(*args)
    except NotImplementedError:
        raise Wrong(f"{name} is not written yet (it raises NotImplementedError)") from None
    except Exception as error:  # the student's own error, named in words
        raise Wrong(f"{name} raised {type(error).__name__}: {error}") from None


def uses_framework(name, f):
    try:
        source = inspect.getsource(f)
    except (OSError, TypeError):  # a function made at run time has no source to read
        return
    found = FRAMEWORK.search(source)
    if found:
        raise Wrong(f"{name} uses a framework's distribution ({found.group(0).rstrip('(')}): this assignment writes "
                    "each density from its formula (jax.numpy only; jax.random only for uniform and normal draws)")


def _grows_with_batch(name, f, make_args):
    """A loop over the batch shows as a traced program that grows with the batch size."""
    sizes = []
    for batch in (2, 6):
        try:
            sizes.append(len(jax.make_jaxpr(f)(*make_args(batch)).jaxpr.eqns))
        except NotImplementedError:
            raise Wrong(f"{name} is not written yet (it raises NotImplementedError)") from None
        except Exception as error:
            raise Wrong(f"{name} cannot be traced by JAX ({type(error).__name__}: {str(error).splitlines()[0]}): "
                        "write it with jax.numpy operations on whole arrays, not numpy or Python floats") from None
    if sizes[1] > sizes[0]:
        raise Wrong(f"{name} loops over the batch (its traced program has {sizes[0]} operations for 2 images and "
                    f"{sizes[1]} for 6): write it with array operations on the whole batch at once")


def close(got, want):
    got = np.asarray(got, dtype=np.float64)
    return got.shape == np.shape(want) and np.allclose(got, want, rtol=RTOL, atol=ATOL, equal_nan=True)


def compare(name, got, want, variants, what):
    """got against want (a numpy array); variants: {message: a wrong answer's value} tried in order."""
    want = np.asarray(want, dtype=np.float64)
    if close(got, want):
        return
    shape = np.shape(got)
    for message, value in variants.items():
        if value is not None and close(got, value):
            raise Wrong(f"{name}: {message}")
    if shape != want.shape:
        raise Wrong(f"{name} returned shape {shape} for {what}; expected {want.shape}")
    if not np.all(np.isfinite(np.asarray(got, dtype=np.float64))):
        raise Wrong(f"{name} returns NaN or inf for {what} (a log of a negative number or of 0?)")
    worst = np.max(np.abs(np.asarray(got, dtype=np.float64) - want))
    raise Wrong(f"{name} differs from aevb's by up to {worst:.4g} nats for {what}")


def sum_variants(per_element, sign_of):
    """The wrong answers of a density summed over its last axis: not summed, the sign, the batch summed."""
    total = per_element.sum(-1)
    return {"it is missing the sum over the last axis (one value per row, summed over its entries)": per_element,
            "it has the wrong sign (a log density of binary pixels is at most 0)" if sign_of == "pixels"
            else "it has the wrong sign": -total,
            "it sums over the batch too: keep one value per row (shape (B,))": total.sum(),
            "it averages over the batch: keep one value per row (shape (B,))": total.mean()}


def structure(name, f, make_args):
    uses_framework(name, f)
    _grows_with_batch(name, f, make_args)
