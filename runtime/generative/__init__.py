"""Generative samplers of lattice spins: variational autoregressive networks (VAN; Wu, Wang,
Zhang, PRL 122, 080602 (2019)) in pure torch, and unbiased estimates on top of any normalised
sampler (neural importance sampling, independence Metropolis)."""
