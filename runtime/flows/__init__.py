"""Normalising flows of continuous lattice fields (scalar phi^4): coupling flows trained by
reverse KL, then neural importance sampling and neural MCMC."""
