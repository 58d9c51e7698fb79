"""A table of encoder/decoder networks, chosen by Config.architecture.

A network is three pure functions: ``init(key, data_dim, config) -> {"encoder": phi,
"decoder": theta}``, ``encode(phi, x (..., D)) -> q``, q(z|x) of the network's posterior family
(aevb.model.posteriors; the default's q = (mean, log_std), each (..., Dz)), and ``decode(theta, z (..., Dz)) -> logits``
(..., D) of the Bernoulli p(x|z). Logits, never probabilities: aevb.model.probability owns the probability.
NETWORKS maps a name to a builder ``(activation, image_shape, family) -> Network``: the activation by name
(ACTIVATIONS), the images' (rows, cols), which a convolution needs, and the posterior family, whose
number of outputs the encoder gives; ``build`` makes each one
once, so a compiled function that takes the network as a static argument compiles once.
Adding a network is one entry in NETWORKS (and its functions).
"""

import functools
import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from . import layered, posteriors, priors
from .layers import dense, dense_init, he_init


class Network(NamedTuple):
    """A network's three pure functions: init(key, data_dim, config) -> {"encoder": phi, "decoder": theta};
    encode(phi, x (B, D)) -> q (the default: (mean, log_std), each (B, Dz)); decode(theta, z (..., Dz)) -> logits
    (..., D)."""

    init: Callable
    encode: Callable
    decode: Callable
    family: tuple = posteriors.gaussian.FAMILY  # the posterior family its encoder gives (set by build)
    prior: tuple = priors.standard.PRIOR  # p(z) (set by build)


ACTIVATIONS = {"tanh": jnp.tanh, "relu": jax.nn.relu, "elu": jax.nn.elu, "softplus": jax.nn.softplus,
               "linear": lambda a: a}  # linear: the identity (the gated network's units as its authors')


def hidden_sizes(config):
    """The widths of the MLPs' hidden layers: config.hidden ("200,200"), or one layer of config.hidden_dim."""
    return tuple(int(width) for width in config.hidden.split(",")) if config.hidden else (config.hidden_dim,)


# ---- mlp: hidden layers each way, mirrored (Kingma & Welling 2013, Appendix C.2: one of 500 tanh) ----


def _layer_names(count):
    # "hidden" for the first layer (the assignment's one-layer checkpoints keep their names), then hidden_2, ...
    return ["hidden"] + [f"hidden_{i}" for i in range(2, count + 1)]


def _hidden_names(layers):
    # The hidden layers a network's parameters hold, in order (a decoder's theta may also hold "prior").
    return _layer_names(sum(name.startswith("hidden") for name in layers))


def mlp_layers(keys, widths):
    """The mlp's dense layers through widths (n_in, h1, ..., n_out): {"hidden": ..., "hidden_2": ..., "out": ...};
    keys: one PRNG key per layer."""
    names = _layer_names(len(widths) - 2) + ["out"]
    return {name: dense_init(key, n_in, n_out) for name, key, n_in, n_out in zip(names, keys, widths, widths[1:])}


def mlp_init(family, key, data_dim, config):
    """{encoder: phi, decoder: theta} of the mlp for data_dim pixels and config's widths; family: the posterior family
    (its outputs)."""
    hidden = hidden_sizes(config)
    keys = jax.random.split(key, 2 * (len(hidden) + 1))  # encoder's layers, then the decoder's
    # One output layer gives all of q's parameters (the default's: mean then log_std).
    phi = mlp_layers(keys[: len(hidden) + 1], (data_dim, *hidden, family.outputs(config.latent_dim)))
    theta = mlp_layers(keys[len(hidden) + 1 :], (config.latent_dim, *hidden[::-1], data_dim))
    return {"encoder": phi, "decoder": theta}


def mlp_apply(activation, layers, inputs):
    """inputs (..., n_in) through the mlp's layers (mlp_layers') -> (..., n_out), the activation after each hidden
    layer. Its hidden layers by name: a decoder's theta may hold the prior's parameters beside them ("prior")."""
    for name in _hidden_names(layers):
        inputs = activation(dense(layers[name], inputs))  # (..., h)
    return dense(layers["out"], inputs)


def mlp(activation, image_shape=None, family=posteriors.gaussian.FAMILY):
    """The mlp Network of an activation name; image_shape unused (any image is a flat vector); family: q's posterior
    family."""
    act = ACTIVATIONS[activation]

    def encode(phi, x):
        return family.q(mlp_apply(act, phi, x))  # from (..., outputs)

    return Network(init=functools.partial(mlp_init, family), encode=encode,
                   decode=lambda theta, z: mlp_apply(act, theta, z))  # (..., D)


# ---- conv: the TensorFlow CVAE tutorial's networks, for any image shape ---------------------------
# Encoder: two 3x3 convolutions of stride 2 (32, then 64 filters), a dense layer to (mean, log_std).
# Decoder: a dense layer to a (ceil(rows/4), ceil(cols/4), 32) grid, two 3x3 transposed convolutions of
# stride 2 (64, then 32 filters), a 3x3 one of stride 1 to one channel, cropped to (rows, cols).
FILTERS = (32, 64)
DIMENSIONS = ("NHWC", "HWIO", "NHWC")


def _conv_init(key, c_in, c_out):
    return {"weight": jax.random.normal(key, (3, 3, c_in, c_out)) / math.sqrt(9 * c_in), "bias": jnp.zeros((c_out,))}


def _add_bias(h, bias):  # (N, rows, cols, C) + (C,), broadcast explicitly
    return h + jnp.broadcast_to(bias, h.shape)


def _coarse(image_shape):
    return tuple(-(-n // 4) for n in image_shape)  # two halvings with SAME padding


def conv(activation, image_shape, family=posteriors.gaussian.FAMILY):
    """The conv Network (two stride-2 convolutions each way) for images of image_shape (rows, cols); activation: a name
    in ACTIVATIONS; family: q's posterior family."""
    act, (rows, cols) = ACTIVATIONS[activation], image_shape
    coarse_rows, coarse_cols = _coarse(image_shape)

    def init(key, data_dim, config):
        k = jax.random.split(key, 7)
        flat = coarse_rows * coarse_cols * FILTERS[1]
        phi = {"conv_1": _conv_init(k[0], 1, FILTERS[0]), "conv_2": _conv_init(k[1], *FILTERS),
               "out": dense_init(k[2], flat, family.outputs(config.latent_dim))}
        theta = {"hidden": dense_init(k[3], config.latent_dim, coarse_rows * coarse_cols * FILTERS[0]),
                 "deconv_1": _conv_init(k[4], FILTERS[0], FILTERS[1]), "deconv_2": _conv_init(k[5], *FILTERS[::-1]),
                 "out": _conv_init(k[6], FILTERS[0], 1)}
        return {"encoder": phi, "decoder": theta}

    def encode(phi, x):
        lead = x.shape[:-1]
        h = x.reshape((-1, rows, cols, 1))  # (N, rows, cols, 1)
        for name in ("conv_1", "conv_2"):
            h = act(_add_bias(jax.lax.conv_general_dilated(h, phi[name]["weight"], (2, 2), "SAME",
                                                           dimension_numbers=DIMENSIONS), phi[name]["bias"]))
        outputs = dense(phi["out"], h.reshape((h.shape[0], -1)))  # (N, outputs)
        return family.q(outputs.reshape(lead + outputs.shape[-1:]))

    def decode(theta, z):
        lead = z.shape[:-1]
        h = act(dense(theta["hidden"], z.reshape((-1, z.shape[-1]))))
        h = h.reshape((-1, coarse_rows, coarse_cols, FILTERS[0]))  # (N, rows/4, cols/4, 32)
        for name, stride in (("deconv_1", 2), ("deconv_2", 2), ("out", 1)):
            h = _add_bias(jax.lax.conv_transpose(h, theta[name]["weight"], (stride, stride), "SAME",
                                                 dimension_numbers=DIMENSIONS), theta[name]["bias"])
            h = act(h) if name != "out" else h
        return h[:, :rows, :cols, 0].reshape(lead + (rows * cols,))  # logits (..., D)

    return Network(init=init, encode=encode, decode=decode)


# ---- gated: the VampPrior code's mlp (Tomczak & Welling 2018; github.com/jmtomczak/vae_vampprior, utils/nn.py's
# GatedDense and he_init): each hidden unit activation(a linear unit) times a sigmoid gate of its own (the code's
# VAE: the identity, --activation linear), weights He-normal, biases as PyTorch's nn.Linear starts them.


def gated_layers(key, widths):
    """The gated mlp's layers through widths (n_in, h1, ..., n_out): each hidden layer {"value", "gate"}, two dense
    layers of he_init, then "out", one; names as the mlp's (mlp_layers)."""
    keys = jax.random.split(key, 2 * len(widths) - 3)  # two per hidden layer, one for "out"
    hidden = {name: {"value": he_init(keys[2 * i], n_in, n_out), "gate": he_init(keys[2 * i + 1], n_in, n_out)}
              for i, (name, n_in, n_out) in enumerate(zip(_layer_names(len(widths) - 2), widths, widths[1:-1]))}
    return {**hidden, "out": he_init(keys[-1], widths[-2], widths[-1])}


def gated_apply(activation, layers, inputs):
    """inputs (..., n_in) through gated_layers' layers -> (..., n_out): activation(value) * sigmoid(gate) in each
    hidden layer, then "out". A decoder's theta may hold the prior's parameters beside them, as the mlp's."""
    for name in _hidden_names(layers):
        value, gate = dense(layers[name]["value"], inputs), dense(layers[name]["gate"], inputs)  # (..., h) each
        inputs = activation(value) * jax.nn.sigmoid(gate)
    return dense(layers["out"], inputs)


def gated(activation, image_shape=None, family=posteriors.gaussian.FAMILY):
    """The gated Network of an activation name (applied to each unit's value; linear: the code's) with config's hidden
    widths each way, mirrored, as the mlp's; image_shape unused; family: q's posterior family."""
    act = ACTIVATIONS[activation]

    def init(key, data_dim, config):
        hidden, (encoder_key, decoder_key) = hidden_sizes(config), jax.random.split(key)
        return {"encoder": gated_layers(encoder_key, (data_dim, *hidden, family.outputs(config.latent_dim))),
                "decoder": gated_layers(decoder_key, (config.latent_dim, *hidden[::-1], data_dim))}

    return Network(init=init, encode=lambda phi, x: family.q(gated_apply(act, phi, x)),
                   decode=lambda theta, z: gated_apply(act, theta, z))  # (..., D)


NETWORKS = {"mlp": mlp, "conv": conv, "gated": gated}
WIDTHS = ("mlp", "gated")  # the networks whose hidden layers Config.hidden (or hidden_dim) sets


def build(architecture, activation="tanh", image_shape=None, posterior="gaussian", prior="standard", top="",
          latent_dim=2):
    """The Network of a name in NETWORKS with an activation, for images of image_shape (rows, cols), its
    encoder giving q of the posterior family named (aevb.model.posteriors.get), its p(z) the prior named
    (aevb.model.priors.get). architecture: a name in NETWORKS (mlp, conv, gated); posterior: a family's name (gaussian,
    full-gaussian, planar:K, coupling:K); top: a second stochastic layer above the mlp's (aevb.model.layered, such
    as 50:100,100, of latent_dim units in all; "": none). Raises ValueError in one line for an unknown name or a
    second layer that check_top refuses."""
    if architecture not in NETWORKS:
        raise ValueError(f"unknown architecture {architecture!r}; choose from {', '.join(NETWORKS)}")
    image_shape, family, p_z = None if image_shape is None else tuple(image_shape), posteriors.get(posterior), priors.get(
        prior)
    if layers := check_top(architecture, family.name, p_z.name, top, latent_dim):
        return _built(layered.builder(*layers), activation, image_shape, layered.Family(), layered.Prior(*layers))
    return _built(NETWORKS[architecture], activation, image_shape, family, p_z)


def check_top(architecture, posterior, prior, top, latent_dim):
    """(z2's units, the widths between z1 and z2) of a second stochastic layer top (aevb.model.layered.parse), or None
    for none; ValueError in one line for one on another architecture, posterior or prior than mlp, gaussian and
    standard (its z1 and z2 are Gaussian, its p(z2) standard). posterior, prior: their names; latent_dim: z1's and
    z2's units together."""
    layers = layered.parse(top, latent_dim)
    if layers and (architecture, posterior, prior) != ("mlp", "gaussian", "standard"):
        raise ValueError(f"a second stochastic layer (top {top}) is built on the mlp with the gaussian posterior and "
                         f"the standard prior, not {architecture}, {posterior}, {prior}")
    return layers


# A learned prior's initial parameters come from the init key folded with this, apart from the networks' keys.
PRIOR_KEY = 0x9120


@functools.cache
def _built(builder, activation, image_shape, family, prior):  # one Network per settings: jit compiles once
    net = builder(activation, image_shape, family)

    def init(key, data_dim, config):
        params = net.init(key, data_dim, config)
        prior_params = prior.init(jax.random.fold_in(key, PRIOR_KEY), config.latent_dim, data_dim)
        return params if prior_params is None else {**params, "prior": prior_params}

    # A network that gives the plain (mean, log_std) pair gives the factorized Gaussian it is (trace time only).
    return net._replace(init=init, encode=lambda phi, x, encode=net.encode: posteriors.as_q(encode(phi, x)),
                        family=family, prior=prior)


def get(name):
    """The network of a name with its default activation (tanh), for networks that need no image shape."""
    return build(name)
