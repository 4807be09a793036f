"""phases tasks (runtime)."""
