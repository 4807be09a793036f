"""The loop behind ``RandomStreams.uniform`` and ``RandomStreams.normal`` on the CPU, compiled by
numba (runtime/random.py applies ``njit`` on the first draw, so importing the streams does not
import numba): the SplitMix64 words of runtime/random.py, keyed by (seed, path, draw) and the element
index, turned into uniforms in one pass without integer temporaries.

torch spends ~8 passes over int64 tensors per draw (add, shift, mask, xor, multiply, ...), and
a Box-Muller normal needs two draws; this loop writes both uniforms of a normal at once, and the
float part (log1p, sqrt, cos) stays in torch's vectorised kernels, run in place. The words are
integer-exact, so the result is bit-identical to the unfused torch path
(tests/spine/test_random_kernels.py); walker engines (DMC, Langevin) and every other
sampler draw the same numbers as before, ~4x faster.
"""

from __future__ import annotations

import numpy as np

_GAMMA = 0x9E3779B97F4A7C15
_C1 = 0xBF58476D1CE4E5B9
_C2 = 0x94D049BB133111EB


def uniforms(offsets: np.ndarray, bits: int, out: np.ndarray) -> None:  # pragma: no cover
    """out[j, i] = (word(offsets[j] + i * gamma) >> (64 - bits)) * 2^-bits for out (k, n)
    float64, offsets (k,) uint64; word = two xor-shift-multiply rounds (runtime/random.py
    ``_finalise``). bits <= 53, so the conversion is exact."""
    gamma, c1, c2 = np.uint64(_GAMMA), np.uint64(_C1), np.uint64(_C2)
    drop = np.uint64(64 - bits)
    scale = 2.0**-bits
    for j in range(out.shape[0]):
        offset = offsets[j]
        row = out[j]
        for i in range(row.shape[0]):
            z = offset + np.uint64(i) * gamma  # wraps modulo 2^64, as int64 does in torch
            z ^= z >> np.uint64(30)
            z *= c1
            z ^= z >> np.uint64(27)
            z *= c2
            row[i] = np.float64(z >> drop) * scale


__all__ = ["uniforms"]
