"""The table of priors p(z), chosen by Config.prior ("standard", "mixture:10", "vamp:500").

A prior gives its parameters (init: None where it has none, so the model's parameters are those of a
standard-prior model, bit for bit), log p(z) at any z (log_density) and draws z ~ p(z) (sample), each from
the generative model's parameters theta: the decoder's, with the prior's under theta["prior"]
(aevb.model.probability.generative makes this view with prior.view; the VampPrior's holds the encoder's q at its
pseudo-inputs). Densities are written by hand: a log-sum-exp over the components; a component is chosen
by a uniform draw against the cumulative weights, no categorical sampler. Adding a prior is one entry in
PRIORS (and its file).
"""

from .. import sized
from . import mixture, standard, vamp

# name -> (prior without a size, prior of a size (components after a colon), or None)
PRIORS = {
    "standard": (standard.PRIOR, None),
    "mixture": (None, lambda components: mixture.Prior(components)),
    "vamp": (None, lambda components: vamp.Prior(components)),
}
MAX_COMPONENTS = 10_000  # components of a mixture, pseudo-inputs of a VampPrior


def get(spec):
    """The prior of a setting such as standard, mixture:10 or vamp:500 (spec); ValueError in one line for
    anything else (aevb.model.sized.entry)."""
    return sized.entry(spec, PRIORS, "prior", "components", MAX_COMPONENTS,
                       "mixture and vamp with their components, such as mixture:10 or vamp:500")


__all__ = ["PRIORS", "get"]
