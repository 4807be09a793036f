"""Neural quantum states for spin-1/2 models: Pauli operators, ED, learners, VMC."""
