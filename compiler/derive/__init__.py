"""Derivations in sympy (no torch): local energies and flip differences, symmetry verification,
Pauli algebra, Hamilton's equations and structural gauge charges."""
