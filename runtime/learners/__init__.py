"""Energy-based learners of the Hopfield-Hinton lineage: Hopfield recall, Boltzmann learning
(inverse Ising), RBMs trained by CD-k / PCD, annealed importance sampling."""

from .ais import ais_log_z, exact_log_z
from .gibbs import GibbsOptions, GibbsSampler, overlap

__all__ = ["GibbsOptions", "GibbsSampler", "ais_log_z", "exact_log_z", "overlap"]
