"""The model: densities, networks and the VAE's probability, as pure functions with the batch axis first.

densities    log densities and samplers, written out by hand (jax.random gives uniform and
             standard-normal draws only)
networks     the table of encoder/decoder networks (Config.architecture)
layered      two stochastic layers, z1 and z2 (Config.top): its network, q(z1|x) q(z2|z1) and p(z2) p(z1|z2)
posteriors   the table of posterior families q(z|x) (Config.posterior); priors: of priors p(z) (Config.prior)
sized        a table's entry named "name" or "name:N", one parser for both tables
probability  log_prior, log_likelihood, log_q, log_weights, the ELBO and IWAE estimators, and the
             table of training objectives (Config.objective)

No I/O and no state. Imports: jax and numpy only; nothing else of aevb.
"""
