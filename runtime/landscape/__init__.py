"""Optimisation as dynamics on a potential f(x) over continuous coordinates: imaginary- and
real-time Schrodinger evolution on a grid, Fokker-Planck and Langevin dynamics, diffusion Monte
Carlo, and the optimisers that anneal a population (MQHOA, simulated and population annealing)."""
