"""Gauge-equivariant normalising flows of U(1) link fields (plaquette couplings), trained by
reverse KL, then neural importance sampling and neural MCMC."""
