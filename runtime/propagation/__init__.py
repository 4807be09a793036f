"""propagation tasks (runtime)."""
