"""The table of priors p(z), chosen by Config.prior ("standard", "mixture:10", "vamp:500").

A prior gives its parameters (init: None where it has none, so the model's parameters are those of a
standard-prior model, bit for bit), log p(z) at any z (log_density) and draws z ~ p(z) (sample), each from
the generative model's parameters theta: the decoder's, with the prior's under theta["prior"]
(aevb.model.probability.generative makes this view with prior.view; the VampPrior's holds the encoder's q at its
pseudo-inputs). Densities are written by hand: a log-sum-exp over the components; a component is chosen
by a uniform draw against the cumulative weights, no categorical sampler. Adding a prior is one entry in
PRIORS (and its file).
"""

import re

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
    anything else."""
    match = re.fullmatch(r"([a-z]+)(?::([0-9]{1,5}))?", spec)
    if not match or match.group(1) not in PRIORS:
        raise ValueError(f"prior is one of {', '.join(PRIORS)} (mixture and vamp with their components, such as "
                         f"mixture:10 or vamp:500), not {spec!r}")
    plain, sized = PRIORS[match.group(1)]
    if match.group(2) is None:
        if plain is None:
            raise ValueError(f"the {match.group(1)} prior needs its components, such as {match.group(1)}:10")
        return plain
    if sized is None:
        raise ValueError(f"the {match.group(1)} prior has no size; write {match.group(1)}")
    components = int(match.group(2))
    if not 1 <= components <= MAX_COMPONENTS:
        raise ValueError(f"a {match.group(1)} prior has 1 to {MAX_COMPONENTS} components, not {components}")
    return sized(components)


__all__ = ["PRIORS", "get"]
