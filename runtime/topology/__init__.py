"""topology tasks (runtime)."""
