"""The compiler: checked model IR -> derived sympy quantities -> torch modules and kernels."""
