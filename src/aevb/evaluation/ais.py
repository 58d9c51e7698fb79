"""log p(x) at any latent dimension by annealed importance sampling (AIS; Neal 2001) with HMC
transitions, as Wu, Burda, Salakhutdinov & Grosse (2017) evaluate decoder-based models, and its
bidirectional check (BDMC; Grosse, Ghahramani & Adams 2015).

The path runs from a start density q0 (by default the prior; or the defensive mixture around the
encoder's q(z|x), or q itself) to the posterior through
f_b(z) = q0(z)^(1-b) p(x, z)^b, b = beta_0 = 0 < beta_1 < ... < beta_T = 1 (a sigmoidal schedule,
or linear). A chain draws z ~ q0, then for t = 1..T adds (beta_t - beta_{t-1}) (log p(x, z) - log q0(z))
to its log weight and moves z by an HMC transition that leaves f_{beta_t} invariant. E[w] = p(x), so
the log of the mean of C chains' weights is a stochastic lower bound on log p(x). Run backwards from
an exact posterior sample (data simulated from the model: z ~ p(z), x ~ p(x|z)), the same chains give
an unbiased estimate of 1/p(x), so minus the log of its mean is a stochastic upper bound: the distance
between the two says how far the settings leave the estimate from the truth.

Step sizes: a pilot run (fewer chains) adapts each image's step size at each distribution toward an
acceptance rate of 0.65; the reported chains use that table frozen. Adapting inside the reported
chains would make each transition depend on the chains' own past: it would no longer leave f_beta
invariant and the weights would lose E[w] = p(x). Frozen, every transition is a fixed HMC kernel.
"""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from .. import parallel
from ..config import AIS
from ..model import posteriors, probability
from . import bounds, hmc, proposals

KEY = np.array([0, 5], np.uint32)  # jax.random.PRNGKey(5), fixed: the chains' draws
OUTPUTS = ("log_px", "log_px_se", "acceptance", "upper", "upper_se")  # per image, in this order


@dataclasses.dataclass(frozen=True)
class Settings:
    """How AIS runs: T distributions, C chains per image, L leapfrog steps per HMC transition."""

    steps: int = AIS["steps"]
    chains: int = AIS["chains"]
    leapfrog: int = AIS["leapfrog"]
    schedule: str = "sigmoid"  # or "linear"
    # From the prior: on the default MNIST model's first 1000 test images the defensive start missed 5 images
    # by 9-28 nats (every chain in one mode, a small SE); the prior start at T = 1000 missed none by over 1.7.
    start: str = "prior"  # or "defensive" (1/2 q + 1/4 q widened + 1/4 prior), or "encoder" (q)
    pilot_chains: int = 4
    target_acceptance: float = 0.65
    initial_step_size: float = 0.5  # times q0's mean standard deviation, each image's own
    adaptation_rate: float = 0.2
    images: int = AIS["images"]  # the first this many test images
    train_images: int = AIS["train_images"]  # the first this many training images (aevb.evaluation.likelihood)
    bdmc: int = AIS["bdmc"]  # examples simulated from the model for the bidirectional check (0: none)

    def gradient_evaluations(self):
        """Evaluations of log p(x, z) and its gradient per image: L per distribution per chain and one at
        its start, for the reported chains and the pilot."""
        return (self.steps * self.leapfrog + 1) * (self.chains + self.pilot_chains)


def schedule(steps, kind="sigmoid", sharpness=4.0):
    """beta_0 = 0 < ... < beta_T = 1, (T + 1,) float64. sigmoid: a logistic curve from -sharpness to
    sharpness, rescaled to [0, 1] (Grosse et al. 2015; Wu et al. 2017): small steps at both ends, where
    f_beta changes fastest; linear: equal steps.
    steps: T; kind: "sigmoid" or "linear". Raises ValueError for another kind."""
    if kind == "linear":
        return np.linspace(0.0, 1.0, steps + 1)
    if kind != "sigmoid":
        raise ValueError(f"unknown AIS schedule {kind!r}: sigmoid or linear")
    s = 1.0 / (1.0 + np.exp(-np.linspace(-sharpness, sharpness, steps + 1)))
    return (s - s[0]) / (s[-1] - s[0])


def evaluate(parts, z):
    """The log target and log q0 at z (C, B, Dz), each with its gradient: ((value (C, B), gradient
    (C, B, Dz)), (the same of q0)), one pass through the decoder for the target's.
    parts: (log target, log q0), functions of z (C, B, Dz) -> (C, B)."""
    return tuple(hmc.value_and_grad(f, z) for f in parts)


def anneal(key, parts, z, path, step_sizes, leapfrog, adapt=None):
    """One pass along path = (from (T,), to (T,), table index (T,)) from z (C, B, Dz). parts: (the log of
    the unnormalized target, log q0), functions of z each (C, B). At each step the log weight gains
    (to - from) (log target(z) - log q0(z)), then an HMC transition leaves f_to invariant with the step
    size step_sizes[index] (B,). adapt: (target acceptance, rate) to adapt the step sizes along the way
    (the pilot), each image's multiplied by exp(rate (its chains' mean acceptance - target)).
    The chains carry both parts and their gradients at their z (evaluate): the weight's increment and
    f_to's value and gradient are sums of those, so a step costs the L leapfrog evaluations alone.
    Returns (log_w (C, B), the step sizes used (T, B), the mean acceptance (T, B), the last z)."""

    def body(carry, inputs):
        z, point, log_w, eps = carry
        step_key, a, b, index = inputs
        eps = eps if adapt else step_sizes[index]  # (B,)
        (log_target, _), (log_q0, _) = point  # at z, from the last transition (or the start)
        log_w = log_w + (b - a) * (log_target - log_q0)

        def f_b(point):  # log f_b and its gradient from the parts at a point
            (log_target, grad_target), (log_q0, grad_q0) = point
            return (1 - b) * log_q0 + b * log_target, (1 - b) * grad_q0 + b * grad_target

        def log_f(z):
            point = evaluate(parts, z)
            return (*f_b(point), point)

        state, info = hmc.kernel(step_key, hmc.State(z, *f_b(point), point), hmc.Gradient(log_f), eps, leapfrog)
        acceptance = jnp.mean(info["acceptance"], axis=0)  # (B,)
        used = eps
        if adapt:
            target, rate = adapt
            eps = eps * jnp.exp(rate * (acceptance - target))
        return (state.z, state.parts, log_w, eps), (used, acceptance)

    a, b, index = path
    keys = jax.random.split(key, a.shape[0])
    start = (z, evaluate(parts, z), jnp.zeros(z.shape[:2]), step_sizes[0])
    (z, _, log_w, _), (used, acceptance) = jax.lax.scan(body, start, (keys, a, b, index))
    return log_w, used, acceptance, z


def forward_path(beta):
    """(from, to, table index) of the forward chains: the transition at beta_t uses table row t.
    beta: the schedule (T + 1,)."""
    return beta[:-1], beta[1:], jnp.arange(1, beta.shape[0])


def reverse_path(beta):
    """From beta_T back to beta_0: the transition at beta_{t-1} uses table row t - 1.
    beta: the schedule (T + 1,)."""
    return beta[1:][::-1], beta[:-1][::-1], jnp.arange(beta.shape[0] - 1)[::-1]


def pilot_table(key, parts, start, settings):
    """The step sizes of a pilot run of settings.pilot_chains chains from the start (see estimate),
    adapted along the path toward settings.target_acceptance: a table (T + 1, B), row t for the
    transition at beta_t (row 0, beta = 0, the same as row 1).
    parts: (log target, log q0) as evaluate takes them."""
    s = settings
    beta = jnp.asarray(schedule(s.steps, s.schedule), jnp.float32)
    sample_start, scale = start
    z = sample_start(jax.random.fold_in(key, 0), s.pilot_chains)  # (P, B, Dz)
    start = s.initial_step_size * scale  # (B,): where f_beta is near q0
    _, used, _, _ = anneal(jax.random.fold_in(key, 1), parts, z, forward_path(beta),
                           jnp.broadcast_to(start, (s.steps + 1,) + start.shape), s.leapfrog,
                           adapt=(s.target_acceptance, s.adaptation_rate))
    return jnp.concatenate([used[:1], used])


def _log_mean_exp_and_se(log_w):
    """log of the mean of exp(log_w) over chains (C, B) -> (B,), and its standard error by the delta
    method, sd(w) / (sqrt(C) mean(w)), from the weights scaled by their largest."""
    top = jnp.max(log_w, axis=0)
    w = jnp.exp(log_w - jnp.broadcast_to(top, log_w.shape))  # (C, B) in (0, 1]
    mean = jnp.mean(w, axis=0)
    se = jnp.std(w, axis=0, ddof=1) / (math.sqrt(log_w.shape[0]) * mean)
    return top + jnp.log(mean), se


def estimate(key, parts, start, settings, z_true=None):
    """AIS of log Z for each image b, Z = the integral of the unnormalized target (parts: see anneal),
    from the start density q0: start = (sample(key, n) -> z (n, B, Dz) drawn from q0, the scale of q0
    (B,) for the first step sizes). Returns (B, len(OUTPUTS)). z_true (B, Dz): also the reverse chains
    from these exact samples of the normalized target (BDMC); otherwise the upper bound is NaN."""
    s = settings
    pilot_key, chain_key, reverse_key = jax.random.split(key, 3)
    table = pilot_table(pilot_key, parts, start, s)  # (T + 1, B), frozen from here on
    beta = jnp.asarray(schedule(s.steps, s.schedule), jnp.float32)  # (T + 1,)
    z = start[0](jax.random.fold_in(chain_key, 0), s.chains)  # (C, B, Dz)
    log_w, _, acceptance, _ = anneal(jax.random.fold_in(chain_key, 1), parts, z, forward_path(beta), table,
                                     s.leapfrog)
    log_z, log_z_se = _log_mean_exp_and_se(log_w)
    upper = upper_se = jnp.full(log_z.shape, jnp.nan)
    if z_true is not None:
        z = jnp.broadcast_to(z_true, (s.chains,) + z_true.shape)
        log_w_reverse, _, _, _ = anneal(reverse_key, parts, z, reverse_path(beta), table, s.leapfrog)
        upper, upper_se = _log_mean_exp_and_se(log_w_reverse)
        upper = -upper  # the mean of the reverse weights estimates 1 / Z: minus its log bounds log Z from above
    return jnp.stack([log_z, log_z_se, jnp.mean(acceptance, axis=0), upper, upper_se], -1)


@jax.jit(static_argnames=("net", "settings", "reverse"))
def ais_chunk(key, net, params, x, z_true, settings, reverse=False):
    """AIS of log p(x) for each image x (B, D): (B, len(OUTPUTS)), the target p(x, z) = p(z) p(x|z) and
    q0 the defensive mixture around the encoder's q(z|x), q itself, or the prior (settings.start).
    reverse: also the reverse chains from z_true (B, Dz), exact posterior samples of simulated x
    (BDMC); otherwise z_true is unused.
    Raises ValueError for a start at q where q has no density at any z (a planar flow)."""
    q = net.encode(params["encoder"], x) if settings.start != "prior" else (jnp.zeros_like(z_true),) * 2
    if settings.start == "defensive":  # 1/2 q + 1/4 q widened + 1/4 prior (aevb.evaluation.proposals)
        draw, log_q0 = proposals.defensive(q, jax.random.fold_in(key, 1))  # a flow's moments: a key of their own
        sample = lambda key, n: draw(key, (n,))[0]  # noqa: E731
    else:  # the encoder's q (a family with a density at any z: not a flow's), or the prior
        if not posteriors.as_q(q).has_density:
            raise ValueError("AIS from the encoder's q needs q's density at any z; a flow gives it at its own draws "
                             "only: start from the prior or the defensive mixture")
        log_q0 = lambda z: probability.log_q(q, z)  # noqa: E731
        sample = lambda key, n: posteriors.as_q(q).sample(key, (n,))[0]  # noqa: E731

    theta = probability.generative(net, params)
    parts = (lambda z: probability.log_joint(net, theta, x, z), log_q0)  # z -> (C, B) each

    start = (sample, jnp.mean(jnp.exp(q[1]), axis=-1))
    return estimate(key, parts, start, settings, z_true if reverse else None)


@jax.jit(static_argnames=("net", "settings", "reverse", "latent_dim"))
def _ais_chunks(net, params, blocks, keys, settings, reverse, latent_dim):
    """ais_chunk of each chunk of images (C, B, D + Dz), z_true in the last Dz columns: (C, B, outputs)."""
    def one(block, key):
        return ais_chunk(key, net, params, block[:, :-latent_dim], block[:, -latent_dim:], settings, reverse)

    return jax.vmap(one)(blocks, keys)


def ais_per_image(net, params, x, settings, latent_dim, z_true=None, key=KEY, progress=False, desc="AIS",
                  devices=parallel.ONE):
    """{output: (N,)} of OUTPUTS for images x (N, D); with z_true (N, Dz) also the reverse chains.
    Images go bounds.IMAGE_CHUNK at a time (chunk i keyed by fold_in(key, its first image)), whole
    chunks split over devices: the same numbers on one device or several."""
    reverse, settings = z_true is not None, dataclasses.replace(settings, images=0, bdmc=0)  # the chains' own
    z_true = np.zeros((len(x), latent_dim), np.float32) if z_true is None else np.asarray(z_true, np.float32)
    blocks = np.concatenate([np.asarray(x, np.float32), z_true], 1)
    params = devices.replicate(params)
    values = bounds.by_chunks(lambda block, keys: _ais_chunks(net, params, block, keys, settings, reverse,
                                                               latent_dim), blocks, key, devices.count, devices,
                               progress, desc)
    return {name: values[:, i] for i, name in enumerate(OUTPUTS)}

