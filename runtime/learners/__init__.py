"""Energy-based learners of the Hopfield-Hinton lineage: Hopfield recall, Boltzmann learning
(inverse Ising), RBMs trained by CD-k / PCD, annealed importance sampling."""

from .ais import ais_log_z, exact_log_z
from .gibbs import GibbsSampler, overlap, random_state

__all__ = ["GibbsSampler", "ais_log_z", "exact_log_z", "overlap", "random_state"]
