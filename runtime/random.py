"""Counter-based random streams, keyed by (seed, stream index, draw) and never by device.

Every random number of a run is a pure function of integers: the run seed, a path of indices
(a scan point, a replica), the global stream index (a chain), the element index within the
stream's block, and the draw counter. A draw of shape ``(B, *rest)`` gives stream ``first + b``
the numbers

    u[b, e] = top bits of mix(key(seed, path, draw) + ((first + b) * width + e) * gamma),

with ``width = prod(rest)``, ``gamma`` the odd Weyl constant 0x9E3779B97F4A7C15 and ``mix`` the
SplitMix64 finaliser (Steele, Lea & Flood 2014; Stafford's variant 13): two xor-shift-multiply
rounds on 64-bit integers. So chain b draws the same numbers whether it runs in a batch of 16 or
of 336, on the CPU or the GPU, alone or after other points of a scan: the integer part is exact
on every device (int64 arithmetic wraps modulo 2^64 on both). Floats use the top 24 (float32)
or 53 (float64) bits, converted exactly.

Why not Philox: ten rounds of 32-bit multiplications cost several torch kernels each; the
two-round 64-bit finaliser costs about as much as ``torch.rand`` on the CPU (benchmarks/
random_streams.py measures it against a sweep). Host-side one-off draws (initial network
weights, data splits) use ``host_generator()``, a CPU generator seeded from the same key.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence

import numpy as np
import torch

from . import random_kernels

_M64 = (1 << 64) - 1
_GAMMA = 0x9E3779B97F4A7C15
_C1 = 0xBF58476D1CE4E5B9
_C2 = 0x94D049BB133111EB
_KEYS = 1024  # keys sent to the device at a time (fused path)
_CPU_BLOCK = 1 << 15  # elements per pass of the compiled CPU normals (2 x 256 KiB of uniforms)


def _signed(x: int) -> int:
    """A 64-bit unsigned value as the int64 with the same bits (what a torch scalar holds)."""
    x &= _M64
    return x - (1 << 64) if x >= 1 << 63 else x


def mix64(z: int) -> int:
    """The full SplitMix64 finaliser on a Python int (keys and the reference of the tests)."""
    z &= _M64
    z = ((z ^ (z >> 30)) * _C1) & _M64
    z = ((z ^ (z >> 27)) * _C2) & _M64
    return z ^ (z >> 31)


def reference_bits(seed: int, path: Sequence[int], draw: int, index: int) -> int:
    """The 64-bit word of element ``index`` (= stream * width + element) of a draw, computed with
    Python integers: the specification the tensor code must reproduce bit for bit."""
    z = (_key(seed, tuple(path), draw) + index * _GAMMA) & _M64
    z = ((z ^ (z >> 30)) * _C1) & _M64
    return ((z ^ (z >> 27)) * _C2) & _M64


def _family(seed: int, path: tuple[int, ...]) -> int:
    k = mix64(seed ^ 0x6A09E667F3BCC909)
    for i in path:
        k = mix64(k + (i + 1) * _GAMMA)
    return k


def _key(seed: int, path: tuple[int, ...], draw: int) -> int:
    return mix64(_family(seed, path) + (draw + 1) * _GAMMA)


def _finalise(weyl: torch.Tensor, offset: int) -> torch.Tensor:
    """The two xor-shift-multiply rounds on ``weyl + offset`` (int64, wrapping)."""
    z = weyl + offset
    # (torch's >> is arithmetic: the masks keep a logical shift's bits; the functional shift
    # takes torch's vectorised path, the ``>>`` operator a scalar-tensor one 8x slower)
    t = torch.bitwise_right_shift(z, 30)
    t &= (1 << 34) - 1
    z ^= t
    z *= _signed(_C1)
    t = torch.bitwise_right_shift(z, 27, out=t)
    t &= (1 << 37) - 1
    z ^= t
    z *= _signed(_C2)
    return z


def _finalise_functional(weyl: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    z = weyl + offset
    z = z ^ (torch.bitwise_right_shift(z, 30) & ((1 << 34) - 1))
    z = z * _signed(_C1)
    z = z ^ (torch.bitwise_right_shift(z, 27) & ((1 << 37) - 1))
    return z * _signed(_C2)


_FUSED: list = []


def _fused_finalise():
    """On CUDA, the rounds as one generated kernel (torch.compile; integer code, so the same
    bits as the eager path; the offset is a device scalar, so no value recompiles it); None
    where compiling is not available: the eager path is used, and is exact too."""
    if not _FUSED:
        try:
            fused = torch.compile(_finalise_functional, dynamic=True, fullgraph=True)
            probe = torch.arange(8, dtype=torch.int64, device="cuda")
            offset = torch.tensor(12345, dtype=torch.int64, device="cuda")
            if not torch.equal(fused(probe, offset).cpu(), _finalise(probe.cpu(), 12345)):
                raise RuntimeError("compiled rounds differ from the eager ones")
            _FUSED.append(fused)
        except Exception:  # noqa: BLE001 - any compile failure: fall back to the eager path
            _FUSED.append(None)
    return _FUSED[0]


_CPU_KERNEL: list = []


def _cpu_uniform_kernel():
    """The compiled CPU loop (numba) ``kernel(offsets (k,) uint64, bits, out (k, n) float64)``:
    out[j, i] = top ``bits`` bits of the word of element i under offset j, times 2^-bits. The
    index i enters as i * gamma, not as a running sum, so LLVM vectorises the loop (64-bit
    multiplies). None without numba (or with PHYSML_NO_NUMBA=1): the torch path is used."""
    if not _CPU_KERNEL:
        try:
            if os.environ.get("PHYSML_NO_NUMBA"):
                raise ImportError("disabled by PHYSML_NO_NUMBA")
            from numba import njit

            uniforms = njit(cache=True, nogil=True)(random_kernels.uniforms)
        except ImportError:
            uniforms = None
        _CPU_KERNEL.append(uniforms)
    return _CPU_KERNEL[0]


class RandomStreams:
    """A family of independent random streams on one device.

    ``seed``: the run seed; ``path``: indices that name this family (``fork`` appends one);
    ``first``: the global index of the family's stream 0 (a slice of chains). ``draws`` counts
    draws; it is the whole state (checkpointed by ``state``/``restore``). Shapes: every draw is
    ``(B, *rest)`` with B streams (chains) on the leading axis.
    """

    def __init__(self, seed: int, device: torch.device | str = "cpu", *,
                 path: Sequence[int] = (), first: int = 0, draws: int = 0):  # fmt: skip
        self.seed = int(seed)
        self.device = torch.device(device)
        self.path = tuple(int(i) for i in path)
        self.first = int(first)
        self.draws = int(draws)
        self._weyl = torch.zeros(0, dtype=torch.int64, device=self.device)
        self._keys, self._keys_block = self._weyl, -1

    def fork(self, *index: int, first: int = 0) -> RandomStreams:
        """An independent family named by ``index`` (a scan point, a replica, a purpose)."""
        return RandomStreams(self.seed, self.device, path=(*self.path, *index), first=first)

    def streams(self, first: int) -> RandomStreams:
        """The same family, with stream 0 at global index ``first`` (a slice of the chains);
        shares the draw counter's current value."""
        return RandomStreams(self.seed, self.device, path=self.path, first=first,
                             draws=self.draws)  # fmt: skip

    def bits(self, shape: Sequence[int]) -> torch.Tensor:
        """int64 words (shape): the finaliser's output before its last xor-shift, whose top
        bits are the finished hash's."""
        shape = tuple(int(n) for n in shape)
        n = math.prod(shape)
        width = math.prod(shape[1:]) if len(shape) > 1 else 1
        draw = self.draws
        self.draws += 1
        if self._weyl.numel() < n:
            self._weyl = torch.arange(max(n, 2 * self._weyl.numel()), dtype=torch.int64,
                                      device=self.device) * _signed(_GAMMA)  # fmt: skip
        shift = self.first * width * _GAMMA
        fused = _fused_finalise() if self.device.type == "cuda" else None
        if fused is None:
            z = _finalise(self._weyl[:n], _signed(_key(self.seed, self.path, draw) + shift))
        else:
            offset = self._device_key(draw)
            z = fused(self._weyl[:n], offset + _signed(shift) if shift else offset)
        return z.reshape(shape)

    def _device_key(self, draw: int) -> torch.Tensor:
        """The key of ``draw`` as a device scalar, from a table of the next _KEYS keys sent
        in one transfer (a transfer per draw would wait for the device each time)."""
        block = draw // _KEYS
        if self._keys_block != block:
            keys = [_signed(_key(self.seed, self.path, d))
                    for d in range(block * _KEYS, (block + 1) * _KEYS)]  # fmt: skip
            self._keys = torch.tensor(keys, dtype=torch.int64, device=self.device)
            self._keys_block = block
        return self._keys[draw % _KEYS]

    def next_key(self) -> int:
        """Reserve the next draw for a kernel that draws in place: its key (unsigned 64-bit).
        Element e of stream b of that draw is then ``key + ((first + b) * width + e) * gamma``
        through the finaliser, as in :meth:`bits`."""
        draw = self.draws
        self.draws += 1
        return _key(self.seed, self.path, draw)

    def family_key(self) -> int:
        """The key of this family before the draw counter is mixed in: the key of draw d is
        ``mix64(family_key + (d + 1) * gamma)`` (kernels that derive per-draw keys)."""
        return _family(self.seed, self.path)

    def _cpu_offsets(self, shape: tuple[int, ...], draws: int) -> list[int] | None:
        """For the compiled CPU loop: the word offsets (unsigned) of element 0 of the next
        ``draws`` draws of ``shape`` (reserving them); None off the CPU or without numba."""
        if self.device.type != "cpu" or _cpu_uniform_kernel() is None:
            return None
        width = math.prod(shape[1:]) if len(shape) > 1 else 1
        shift = self.first * width * _GAMMA
        return [(self.next_key() + shift) & _M64 for _ in range(draws)]

    def uniform(self, shape: Sequence[int], dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Uniform on [0, 1): the top 24 (float32) or 53 (float64) bits, exactly converted."""
        bits = 24 if dtype in (torch.float32, torch.float16, torch.bfloat16) else 53
        shape = tuple(int(n) for n in shape)
        offsets = self._cpu_offsets(shape, 1) if dtype in (torch.float32, torch.float64) else None
        if offsets is not None:  # exact in float64, then in float32
            out = torch.empty(shape, dtype=torch.float64, device=self.device)
            _cpu_uniform_kernel()(np.array(offsets, dtype=np.uint64), bits,
                                  out.numpy().reshape(1, -1))  # fmt: skip
            return out.to(dtype)
        z = self.bits(shape)
        z = torch.bitwise_right_shift(z, 64 - bits, out=z)
        z &= (1 << bits) - 1
        return z.to(dtype).mul_(2.0**-bits)

    def integers(self, low: int, high: int, shape: Sequence[int]) -> torch.Tensor:
        """Uniform integers in [low, high) (int64), by the multiply-shift map of 32 top bits
        (bias below 2^-32 * (high - low))."""
        n = int(high) - int(low)
        if not 0 < n < 1 << 31:
            raise ValueError(f"integers: need 0 < high - low < 2^31, got [{low}, {high})")
        z = self.bits(shape)
        z = torch.bitwise_right_shift(z, 32, out=z)
        z &= (1 << 32) - 1
        z *= n
        z = torch.bitwise_right_shift(z, 32, out=z)
        return z.add_(int(low))

    def normal(self, shape: Sequence[int], dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Standard normal (Box-Muller on two float64 uniforms, then cast). On the CPU both
        uniforms come from one compiled loop and the same torch float operations run in place
        in blocks of _CPU_BLOCK elements (the two uniform rows stay in cache): the same bits as
        the unfused path."""
        shape = tuple(int(n) for n in shape)
        offsets = self._cpu_offsets(shape, 2)
        if offsets is not None:
            kernel, n = _cpu_uniform_kernel(), math.prod(shape)
            out = torch.empty(shape, dtype=torch.float64, device=self.device)
            flat = out.view(-1)
            pair = torch.empty((2, min(n, _CPU_BLOCK)), dtype=torch.float64, device=self.device)
            for start in range(0, n, _CPU_BLOCK):  # cache blocks of elements, few per draw
                m = min(_CPU_BLOCK, n - start)
                block = pair[:, :m]
                words = [(o + start * _GAMMA) & _M64 for o in offsets]
                kernel(np.array(words, dtype=np.uint64), 53, block.numpy())
                u1, u2 = block[0], block[1]
                torch.log1p(u1.neg_(), out=u1).mul_(-2.0).sqrt_()
                torch.mul(u1, u2.mul_(2 * math.pi).cos_(), out=flat[start : start + m])
            return out.to(dtype)
        u1 = self.uniform(shape, torch.float64)
        u2 = self.uniform(shape, torch.float64)
        r = torch.sqrt(-2.0 * torch.log1p(-u1))
        return (r * torch.cos((2 * math.pi) * u2)).to(dtype)

    def permutation(self, n: int) -> torch.Tensor:
        """A uniformly random permutation of range(n) (int64)."""
        return torch.argsort(self.bits((1, n)).reshape(n))

    def host_generator(self) -> torch.Generator:
        """A CPU generator seeded from this family's next key, for one-off host draws (initial
        weights, data splits) that torch's own initialisers make."""
        seed = mix64(_key(self.seed, self.path, self.draws)) >> 1
        self.draws += 1
        return torch.Generator().manual_seed(seed)

    def state(self) -> dict[str, torch.Tensor]:
        """What a checkpoint keeps: the draw counter."""
        return {"draws": torch.tensor([self.draws], dtype=torch.int64, device="cpu")}

    def restore(self, tensors: dict[str, torch.Tensor]) -> None:
        self.draws = int(tensors["draws"].reshape(-1)[0])


__all__ = ["RandomStreams", "mix64", "reference_bits"]
