"""discovery tasks (runtime)."""
