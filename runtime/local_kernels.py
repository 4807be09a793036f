"""Sweeps of single-site samplers through generated kernels (numba on the CPU, Triton on CUDA).

:mod:`physml_lang.compiler.lower.kernels` emits the kernel from a :class:`KernelSpec`; here the
spec is read off a sampler's lowered local energy, the acceptance (or heat-bath) tables are
computed with the same torch kernels the torch path runs, and the generated module is written to
a cache folder and imported (numba caches its machine code beside it; Triton reads its source).
A kernel consumes the run's random streams exactly as the torch path does (same draws, same
counters), so a run gives the same chains either way; where no kernel applies, or one fails to
build, the torch path runs and the reason is kept (``GeneratedSweep.build`` returns it).
"""

from __future__ import annotations

import importlib.util
import math
import os
import sys
import tempfile
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

from physml_lang.compiler.derive.local import CANDIDATE
from physml_lang.compiler.lower.kernels import KernelSpec, numba_source, triton_source
from physml_lang.compiler.lower.program import ParameterValue
from physml_lang.compiler.lower.terms import Access

from .random import RandomStreams

CACHE_ENV = "PHYSML_KERNEL_CACHE"
BLOCK = 1024
_MODULES: dict[Path, ModuleType] = {}


def cache_folder() -> Path:
    """Where generated kernel modules live: $PHYSML_KERNEL_CACHE, else the user's cache."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "physml" / "kernels"


def load_module(source: str, name: str) -> ModuleType:
    """Import generated ``source`` as a module named ``name`` from the cache folder (written
    atomically; the same name always holds the same source)."""
    folder = cache_folder()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        folder = Path(tempfile.gettempdir()) / "physml-kernels"
        folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.py"
    if path in _MODULES:
        return _MODULES[path]
    if not path.exists() or path.read_text() != source:
        fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            fh.write(source)
        os.replace(tmp, path)
    spec = importlib.util.spec_from_file_location(f"physml_generated_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    _MODULES[path] = module
    return module


def triton_available() -> bool:
    try:
        import triton  # noqa: F401
    except Exception:  # noqa: BLE001 - any import failure means: no Triton here
        return False
    return True


def numba_available() -> bool:
    if os.environ.get("PHYSML_NO_NUMBA") == "1":
        return False
    try:
        import numba  # noqa: F401
    except Exception:  # noqa: BLE001
        return False
    return True


class GeneratedSweep:
    """One sampler's sweeps through a generated kernel; ``sweep(state)`` replaces the torch
    path's, drawing the same random numbers."""

    def __init__(self, sampler, spec: KernelSpec, backend: str, module: ModuleType,
                 reads: list[list[Access]]):  # fmt: skip
        self.sampler, self.spec, self.backend, self.module = sampler, spec, backend, module
        self.reads = reads
        cm, dev = sampler.cm, sampler.device
        lat = cm.lattice
        self.n = lat.n_sites
        self.cells = tuple(int(c) for c in lat.cells)
        self.field = sampler.field
        self.values = sampler.values
        colours = sampler.fk.colours
        self.colour = (colours.reshape(-1).to(torch.int8) if colours is not None
                       else torch.zeros(self.n, dtype=torch.int8, device=dev)).to(dev).contiguous()  # fmt: skip
        self.n_colours = sampler.fk.n_colours if spec.schedule == "colours" else 1
        self.table = self._tables().contiguous()
        self.counts = torch.zeros(sampler.chains, dtype=torch.int64, device=dev)
        self._codes: torch.Tensor | None = None
        self._last: torch.Tensor | None = None
        self._affine: bool | None = None
        # numba and Triton compile on the first call: make it here, on scratch codes, so that a
        # kernel that cannot be compiled falls back to the torch path before the run starts
        self._launch(torch.zeros(sampler.chains, self.n, dtype=torch.int8, device=dev), 0, 0, 0,
                     0, 0)  # fmt: skip
        self.counts.zero_()

    # ---------------------------------------------------------------- construction
    @classmethod
    def build(cls, sampler, rule: str, schedule: str, want: str) -> tuple[GeneratedSweep | None, str]:
        """The kernel sweep for ``sampler`` and the backend used, or None and why not.
        ``want``: "auto" (numba on the CPU, Triton on CUDA), "numba", "triton" or "torch"."""
        if want == "torch":
            return None, "torch (as asked)"
        cm, dev = sampler.cm, sampler.device
        if want == "auto":
            backend = "triton" if dev.type == "cuda" else "numba"
        else:
            backend = want
        if backend == "numba" and dev.type != "cpu":
            return None, "numba kernels run on the CPU"
        if backend == "triton" and dev.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
            return None, "Triton kernels need CUDA (or TRITON_INTERPRET=1 on the CPU)"
        if backend == "numba" and not numba_available():
            return None, "numba is not available (not installed, or PHYSML_NO_NUMBA=1)"
        if backend == "triton" and not triton_available():
            return None, "Triton is not installed"
        per_cell = (schedule == "colours" and rule == "metropolis"
                    and all(s is not None for s in getattr(sampler, "sublattices", [None])))  # fmt: skip
        spec, why = cm.kernel_spec(sampler.field, rule, schedule, per_cell)
        if spec is None:
            return None, why
        reads = [[Access("field", sampler.field, off, basis=sb) for off, sb in r]
                 for r in spec.reads]  # fmt: skip
        source = numba_source(spec) if backend == "numba" else triton_source(spec)
        try:
            module = load_module(source, f"k{spec.digest()}_{backend}")
            sweep = cls(sampler, spec, backend, module, reads)
        except Exception as exc:  # noqa: BLE001 - a kernel that fails to build: the torch path
            return None, f"the generated {backend} kernel failed to build ({type(exc).__name__}: " \
                f"{str(exc)[:200]})"
        return sweep, backend

    def _tables(self) -> torch.Tensor:
        """(B, basis, W) acceptance probabilities or (B, basis, W, q) cumulative heat-bath
        weights, one entry per neighbourhood code, from the lowered torch kernels."""
        s, spec = self.sampler, self.spec
        fk, dtype, dev = s.fk, s.cm.dtype, s.device
        q, lead, W = spec.q, spec.leading, spec.table_width
        beta = s.beta.reshape(-1, 1)
        out = []
        for b, reads in enumerate(self.reads):
            C = spec.codes(b)
            code = torch.arange(C, device=dev)
            digit = [torch.div(code, q**i, rounding_mode="floor") % q
                     for i in range(lead + len(reads))]  # fmt: skip
            value = [self.values[d] for d in digit]
            part = fk.local_energy.stencil.parts[b]
            env = {sym: value[lead + reads.index(w)] for sym, w in part.inputs.items()
                   if isinstance(w, Access)}  # fmt: skip
            env |= {sym: s.cm.kernels.parameter(w.name) for sym, w in part.inputs.items()
                    if isinstance(w, ParameterValue)}  # fmt: skip

            def local(v, part=part, env=env, C=C):
                out = part({**env, CANDIDATE: v})
                return torch.as_tensor(out, dtype=dtype, device=dev).expand(C)

            if spec.rule == "heatbath":
                energies = torch.stack([local(v) for v in self.values])[:, None, :]
                table = s.local_cdf(energies, beta.unsqueeze(0)).permute(1, 2, 0)
            else:
                if spec.rule == "flip" and spec.schedule == "colours":
                    flip = fk.flip_delta.parts[b]
                    here = Access("field", s.field, (0,) * len(self.cells), basis=b)
                    fenv = {sym: (value[0] if w == here else value[lead + reads.index(w)])
                            for sym, w in flip.inputs.items() if isinstance(w, Access)}  # fmt: skip
                    fenv |= {sym: s.cm.kernels.parameter(w.name) for sym, w in flip.inputs.items()
                             if isinstance(w, ParameterValue)}  # fmt: skip
                    delta = torch.as_tensor(flip(fenv), dtype=dtype, device=dev).expand(C)
                else:
                    new = value[1] if spec.rule == "metropolis" else self.values[q - 1 - digit[0]]
                    delta = local(new) - local(value[0])
                table = s.acceptance_of(beta, delta[None, :], spec.schedule)
            out.append(torch.nn.functional.pad(table, _pad(table, W)))
        return torch.stack(out, 1)

    # ---------------------------------------------------------------- sweeps
    def codes(self, s: torch.Tensor) -> torch.Tensor:
        """(B, N) int8 value indices of configurations s (B, *lattice.shape)."""
        if self._last is not s or self._codes is None:
            idx = self.sampler.site_domain.index(s)
            self._codes = idx.reshape(s.shape[0], -1).to(torch.int8).contiguous()
        return self._codes

    def to_values(self, codes: torch.Tensor) -> torch.Tensor:
        """The values v_k of codes k: v_0 + k step where that is exact (every domain of
        evenly spaced values here), else by lookup."""
        if self._affine is None:
            k = torch.arange(len(self.values), device=self.values.device, dtype=self.values.dtype)
            lowest, step = self.values[0], self.values[1] - self.values[0]
            self._affine = bool(torch.equal(k * step + lowest, self.values))
        if self._affine:
            lowest, step = float(self.values[0]), float(self.values[1] - self.values[0])
            return codes.to(self.values.dtype).mul_(step).add_(lowest)
        return self.values[codes.long()]

    def sweep(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        s = state[self.field]
        codes = self.codes(s)
        sm, spec = self.sampler, self.spec
        streams: RandomStreams = sm.streams
        self.counts.zero_()
        if spec.schedule == "colours":
            key = streams.next_key()
            for c in range(self.n_colours):
                pkey = streams.next_key() if spec.rule == "metropolis" else 0
                self._launch(codes, c, key, pkey, 0, 0)
                if sm.track_acceptance:
                    sm.proposed += sm.mask_sizes[c]
        else:
            draw0 = streams.draws
            streams.draws += spec.draws_per_update * self.n
            self._launch(codes, 0, 0, 0, streams.family_key(), draw0)
            if sm.track_acceptance:
                sm.proposed += self.n
        if sm.track_acceptance:
            sm.accepted += self.counts.to(sm.accepted.dtype)
        out = self.to_values(codes).reshape(s.shape)
        self._last = out
        return {**state, self.field: out}

    def _launch(self, codes: torch.Tensor, c: int, key: int, pkey: int, path_key: int,
                draw0: int) -> None:  # fmt: skip
        first = self.sampler.streams.first
        if self.backend == "numba":
            self.module.update(codes.numpy(), self.colour.numpy(), c, np.uint64(key),
                               np.uint64(pkey), np.uint64(path_key), draw0, first,
                               self.table.numpy(), self.counts.numpy(),
                               np.asarray(self.cells, dtype=np.int64))  # fmt: skip
            return
        B = codes.shape[0]
        flat = self.n * B <= BLOCK * 64  # small: blocks span chains (fewer, fuller programs)
        block = min(BLOCK, 1 << max(4, (self.n * (B if flat else 1) - 1).bit_length()))
        if self.spec.schedule != "colours":
            grid = (B,)
        else:
            grid = (math.ceil(self.n * B / block),) if flat else (B, math.ceil(self.n / block))
        self.module.update[grid](codes, self.colour, c, _u64(key), _u64(pkey), _u64(path_key),
                                 draw0, first, self.table, self.counts, *self.cells, self.n, B,
                                 BLOCK=block, FLAT=flat)  # fmt: skip


def _pad(table: torch.Tensor, width: int) -> list[int]:
    """F.pad widths that extend dimension 1 of ``table`` (codes) to ``width``."""
    after = table.dim() - 2
    return [0, 0] * after + [0, width - table.shape[1]]


def _u64(x: int) -> int:
    """A 64-bit key as Triton takes an unsigned scalar argument."""
    return int(x) & ((1 << 64) - 1)


__all__ = ["GeneratedSweep", "cache_folder", "load_module"]
