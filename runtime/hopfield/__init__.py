"""The Hopfield network's phase diagram in (alpha, T): paramagnet, retrieval and spin glass,
against the Amit-Gutfreund-Sompolinsky lines."""
