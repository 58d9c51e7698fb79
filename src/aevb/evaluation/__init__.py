"""Evaluation: numbers about a trained model, from its parameters and arrays (no files).

bounds   the ELBO with its standard error, the IWAE bound (with q or the defensive proposal); fixed keys
proposals  the defensive proposal around q, whatever its family
exact    log p(x) by quadrature on a tiled grid (Dz = 2), with its accuracy check
gaps     everything `aevb evaluate --exact` measures around it: bounds against K, the gap decomposition
q_stars  q*, the best factorized Gaussian per image: on the exact grid (Dz = 2) or by SVI; q*_F of a richer family
families  the ELBO of any q in bounded memory, and the gaps against the run's own posterior family
curves   what training records each epoch (passed into training by the pipeline)
partial  partial observation: SVI of p(z | observed pixels), completions, posterior grids
hmc      Hamiltonian Monte Carlo: one transition, hand-written
ais      annealed importance sampling with HMC, forward and reverse (BDMC)
likelihood  what `aevb evaluate --ais` measures: AIS of test images, BDMC, checked against exact
answers  the true/false questions and their computed demonstrations
aggregate  the prior beside the aggregate posterior on a grid (Dz = 2), and the KL between them

Imports: aevb.errors, aevb.model, aevb.data (batch chunks), aevb.parallel.
"""

from . import (aggregate, ais, answers, bounds, curves, exact, families, gaps, hmc, likelihood, partial,  # noqa: F401
               proposals, q_stars)
