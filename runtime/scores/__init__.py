"""Score models (denoising score matching, annealed Langevin, reverse SDE, probability-flow
ODE) and flow matching of continuous lattice fields."""
