"""The lowering: expression IR -> sympy (:mod:`.sympy`), sympy -> torch (:mod:`.torch`)."""
