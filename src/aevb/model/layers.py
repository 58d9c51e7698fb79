"""Dense layers, the block every network here is built of (aevb.model.networks, aevb.model.layered): a layer is
{"weight": (n_in, n_out), "bias": (n_out,)}, or per image {"weight": (B, n_in, n_out), "bias": (B, n_out)} where
a posterior carries a network of its own for each image (the second stochastic layer's q(z2|z1))."""

import math

import jax
import jax.numpy as jnp


def dense_init(key, n_in, n_out):
    # Weights ~ N(0, 1/n_in) (LeCun normal) keep tanh units out of saturation at the start.
    """{weight (n_in, n_out) ~ N(0, 1/n_in), bias zeros (n_out,)} from key."""
    return {"weight": jax.random.normal(key, (n_in, n_out)) / jnp.sqrt(n_in), "bias": jnp.zeros((n_out,))}


def he_init(key, n_in, n_out):
    # The VampPrior code's (utils/nn.py): its he_init draws the weights; PyTorch's nn.Linear has drawn the biases.
    """{weight (n_in, n_out) ~ N(0, 2/n_in) (He et al. 2015), bias (n_out,) ~ U(-1/sqrt(n_in), 1/sqrt(n_in))}
    from key."""
    weight_key, bias_key = jax.random.split(key)
    bound = 1 / math.sqrt(n_in)
    return {"weight": jax.random.normal(weight_key, (n_in, n_out)) * math.sqrt(2 / n_in),
            "bias": jax.random.uniform(bias_key, (n_out,), minval=-bound, maxval=bound)}


def dense(layer, inputs):
    """inputs (..., n_in) -> (..., n_out), the bias broadcast over the leading axes explicitly. layer: {"weight":
    (n_in, n_out), "bias": (n_out,)}, or a layer per image, weight (B, n_in, n_out) and bias (B, n_out), with inputs
    (..., B, n_in)."""
    weight = layer["weight"]
    outputs = inputs @ weight if weight.ndim == 2 else jnp.einsum("...bi,bio->...bo", inputs, weight)
    return outputs + jnp.broadcast_to(layer["bias"], outputs.shape)


def stack_init(key, widths):
    """Dense layers through widths (n_in, h1, ..., n_out) as a list, [{"weight", "bias"}, ...], each from its own
    key split from key."""
    keys = jax.random.split(key, len(widths) - 1)
    return [dense_init(k, n_in, n_out) for k, n_in, n_out in zip(keys, widths[:-1], widths[1:], strict=True)]


def stack_apply(activation, layers, inputs):
    """inputs (..., n_in) through a list of layers (stack_init's, or per image: see dense) -> (..., n_out): the
    activation between layers, none after the last."""
    for i, layer in enumerate(layers):
        inputs = dense(layer, inputs)
        inputs = activation(inputs) if i < len(layers) - 1 else inputs
    return inputs
