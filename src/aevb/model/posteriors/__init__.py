"""The table of posterior families q(z|x), chosen by Config.posterior ("gaussian", "full-gaussian", "planar:8",
"coupling:4").

A family says how many numbers the encoder gives for it (outputs(Dz)) and makes q from them (q(outputs)); its
q_type is q's class, read before any q exists.
A q draws z with its log density, ``q.sample(key, lead) -> (z (lead..., ..., Dz), log q (lead..., ...))``, and
gives ``q.location`` (the point figures draw), ``q.scale`` (a spread per coordinate) and ``q.factorized(key) ->
(mean, log_std)`` (a factorized Gaussian near q, where SVI's q* starts); where the family
has_density, ``q.log_density(z)`` at any z, and where exact_kl, ``q.kl_to_prior()``. Evaluation and training
use these alone. Adding a family is one entry in FAMILIES (and its file); log-determinants are written by hand.
"""

from .. import sized
from . import coupling, full_gaussian, gaussian, planar
from .gaussian import Gaussian

# name -> (family without a size, family of a size (a whole number after a colon), or None)
FAMILIES = {
    "gaussian": (gaussian.FAMILY, None),
    "full-gaussian": (full_gaussian.FAMILY, None),
    "planar": (planar.FAMILY, lambda steps: planar.Family(steps=steps)),
    "coupling": (coupling.FAMILY, lambda steps: coupling.Family(steps=steps)),
}
MAX_STEPS = 64  # a flow's steps, each its own layer in the compiled program


def get(spec):
    """The family of a name such as gaussian or planar:8; ValueError in one line for anything else.
    spec: the family's setting, a name with its options after a colon (aevb.model.sized.entry)."""
    return sized.entry(spec, FAMILIES, "posterior", "steps", MAX_STEPS, "a flow with its steps, such as planar:8")


def as_q(q):
    """q itself, or a plain (mean, log_std) pair as the Gaussian it is (an SVI fit, a test's q)."""
    return q if hasattr(q, "sample") else Gaussian(*q)


__all__ = ["FAMILIES", "Gaussian", "as_q", "get"]
