"""Fused local-update kernels, generated from a field's derived local energy.

A single-site update (Metropolis, heat bath) of a discrete field on a periodic lattice reads, at
a site x of sublattice b, the values at a fixed set of sites x + d_n (the stencil of its local
energy E_loc(x, v)). Everything the update decides is therefore a function of the neighbourhood

    code = k_x + q k_new + q^2 sum_n q^n k(x + d_n)        (k: a value's index in the domain)

(the leading digits only where the rule needs them). The runtime tabulates that function once
per chain with the lowered torch kernels of the same local energy, so the acceptance
probabilities are the numbers the torch path computes; the kernel emitted here does what is
left: int8 storage, neighbourhood codes by index arithmetic on the periodic cells, the run's
counter-based uniforms (SplitMix64 keyed by seed, stream and element: bit for bit the torch
path's draws), the table lookup and the write, one call per colour.

Two emitters share one :class:`KernelSpec`, built from the compiler's IR only (no user text:
field names appear in comments, never as identifiers): ``numba_source`` (the CPU path) and
``triton_source`` (GPUs, and the CPU through Triton's interpreter in tests).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

GAMMA = 0x9E3779B97F4A7C15
C1 = 0xBF58476D1CE4E5B9
C2 = 0x94D049BB133111EB

Read = tuple[tuple[int, ...], int]  # (cell offset, sublattice) of a site the update reads
RULES = ("flip", "metropolis", "heatbath")
SCHEDULES = ("colours", "random_site")
MAX_CODES = 1 << 16  # table entries per sublattice and chain


@dataclass(frozen=True)
class KernelSpec:
    """What a generated local-update kernel is, as data.

    ``rule``: "flip" (two-valued domain: the other value), "metropolis" (a uniformly random
    other value, drawn per site), "heatbath" (drawn from the local weights); ``schedule``:
    "colours" (every site of one colour per call) or "random_site" (N single-site updates per
    chain per call); ``reads[b]``: the sites the local energy of sublattice b reads, in the
    order of the code's digits; ``float_bits``: 24 (float32) or 53 (float64) uniforms;
    ``proposal_per_cell``: a colour's proposals are drawn per unit cell (the torch path's
    sublattice layout) rather than per site; ``describe``: comment lines (the derived local
    energy) printed at the top of the source.
    """

    rule: str
    schedule: str
    ndim: int
    basis: int
    q: int
    reads: tuple[tuple[Read, ...], ...]
    float_bits: int
    proposal_per_cell: bool = False
    describe: tuple[str, ...] = ()

    @property
    def leading(self) -> int:
        """Digits before the neighbours: the current value (flip, metropolis), the proposal."""
        return {"flip": 1, "metropolis": 2, "heatbath": 0}[self.rule]

    def codes(self, b: int) -> int:
        return self.q ** (self.leading + len(self.reads[b]))

    @property
    def table_width(self) -> int:
        """Entries per (chain, sublattice): the largest sublattice's code range."""
        return max(self.codes(b) for b in range(self.basis))

    @property
    def draws_per_update(self) -> int:
        """Random-site schedule: draws per single-site update (site, [proposal], uniform)."""
        return 3 if self.rule == "metropolis" else 2

    def digest(self) -> str:
        """A name for the generated module: the hash of what determines its source."""
        text = repr((self.rule, self.schedule, self.ndim, self.basis, self.q, self.reads,
                     self.float_bits, self.proposal_per_cell, 3))  # fmt: skip
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def ineligible(rule: str, schedule: str, cells: tuple[int, ...], q: int,
               reads: tuple[tuple[Read, ...], ...]) -> str | None:  # fmt: skip
    """Why no kernel is generated for this update (None: one is)."""
    if rule not in RULES or schedule not in SCHEDULES:
        return f"no generated kernel for {rule} with {schedule} updates"
    if q > 127:
        return "the domain has more than 127 values (int8 storage)"
    lead = {"flip": 1, "metropolis": 2, "heatbath": 0}[rule]
    for stencil in reads:
        if q ** (lead + len(stencil)) > MAX_CODES:
            return (f"the local energy reads {len(stencil)} sites of a {q}-valued field: "
                    f"more than {MAX_CODES} neighbourhoods to tabulate")  # fmt: skip
        for offset, _ in stencil:
            if any(abs(o) >= n for o, n in zip(offset, cells)):
                return "a stencil offset reaches around the periodic lattice"
    return None


# ------------------------------------------------------------------------- shared pieces
def _offsets(spec: KernelSpec) -> list[tuple[int, ...]]:
    seen: dict[tuple[int, ...], None] = {}
    for stencil in spec.reads:
        for offset, _ in stencil:
            if any(offset):
                seen.setdefault(offset, None)
    return list(seen)


def _wrapped(axis: int, o: int) -> str:
    return f"i{axis}" if o == 0 else f"i{axis}{'p' if o > 0 else 'm'}{abs(o)}"


def _cell_expr(spec: KernelSpec, offset: tuple[int, ...]) -> str:
    expr = _wrapped(0, offset[0])
    for axis in range(1, spec.ndim):
        expr = f"({expr}) * L{axis} + {_wrapped(axis, offset[axis])}"
    return expr


def _site_expr(spec: KernelSpec, read: Read, cell: str = "cell") -> str:
    offset, b = read
    c = cell if not any(offset) else f"({_cell_expr(spec, offset)})"
    return c if spec.basis == 1 else f"{c} * {spec.basis} + {b}"


def _header(spec: KernelSpec, backend: str) -> list[str]:
    lines = [f"# generated by physml ({backend}): {spec.rule} updates, {spec.schedule}, "
             f"{spec.ndim}-d periodic cells x {spec.basis} sublattice(s), q = {spec.q}"]  # fmt: skip
    lines += [f"# {line}" for line in spec.describe]
    for b, stencil in enumerate(spec.reads):
        digits = ["k(x)", "k(new)"][: spec.leading]
        digits += [f"k(x + {off}{'' if spec.basis == 1 else f', sublattice {sb}'})"
                   for off, sb in stencil]  # fmt: skip
        lines.append(f"# sublattice {b}: code = base-{spec.q} digits [{', '.join(digits)}]")
    return lines


# ------------------------------------------------------------------------- numba (CPU)
def numba_source(spec: KernelSpec) -> str:
    """A module defining ``update(s, colour, c, key, pkey, path_key, draw0, first, table,
    accepted, cells)``, compiled by numba (one thread).

    s: (B, N) int8 value indices, updated in place; colour: (N,) int8; table: (B, basis, W)
    (flip, metropolis) or (B, basis, W, q) cumulative weights (heat bath); accepted: (B,)
    int64, incremented; cells: (ndim,) int64. Colours: ``key`` the uniform draw's key (with
    the first stream folded in), ``pkey`` the proposal draw's. Random sites: ``path_key`` and
    ``draw0``, the streams' family key and first draw."""
    q, nb = spec.q, spec.basis
    ftype = "np.float32" if spec.float_bits == 24 else "np.float64"
    lines = _header(spec, "numba") + [
        "import numpy as np",
        "from numba import njit",
        "",
        f"G = np.uint64({GAMMA})",
        f"C1 = np.uint64({C1})",
        f"C2 = np.uint64({C2})",
        f"SCALE = {ftype}(2.0 ** -{spec.float_bits})",
        "",
        "",
        "@njit(cache=True, nogil=True)",
        "def bits(key, index):",
        "    z = key + index * G",
        "    z = (z ^ (z >> np.uint64(30))) * C1",
        "    return (z ^ (z >> np.uint64(27))) * C2",
        "",
        "",
        "@njit(cache=True, nogil=True)",
        "def uniform(key, index):",
        f"    return {ftype}(bits(key, index) >> np.uint64({64 - spec.float_bits})) * SCALE",
        "",
        "",
        "@njit(cache=True, nogil=True)",
        "def below(key, index, n):",
        "    return ((bits(key, index) >> np.uint64(32)) * np.uint64(n)) >> np.uint64(32)",
        "",
        "",
        "@njit(cache=True, nogil=True)",
        "def mix(z):",
        "    z = (z ^ (z >> np.uint64(30))) * C1",
        "    z = (z ^ (z >> np.uint64(27))) * C2",
        "    return z ^ (z >> np.uint64(31))",
        "",
    ]
    if spec.schedule == "colours":
        lines += _numba_colours(spec, q, nb)
    else:
        lines += _numba_random(spec, q, nb)
    return "\n".join(lines) + "\n"


def _numba_decide(spec: KernelSpec, b: int, indent: str, u: str, stream: str,
                  pindex: str) -> list[str]:  # fmt: skip
    """Lines deciding the update of site x (sublattice b): uses row, x, cell."""
    q = spec.q
    digits = [f"np.int64(row[{_site_expr(spec, r)}])" for r in spec.reads[b]]
    lines = []
    if spec.rule in ("flip", "metropolis"):
        lines.append(f"{indent}k = np.int64(row[x])")
    if spec.rule == "flip":
        lines.append(f"{indent}new = {q - 1} - k")
    elif spec.rule == "metropolis":
        lines.append(f"{indent}new = (k + 1 + np.int64(below(pkey, {pindex}, {q - 1}))) % {q}")
    lead = {"flip": ["k"], "metropolis": ["k", "new"], "heatbath": []}[spec.rule]
    code = "0"
    for d in reversed(lead + digits):
        code = d if code == "0" else f"{d} + {q} * ({code})"
    lines.append(f"{indent}code = {code}")
    lines.append(f"{indent}u = uniform({u}, {stream})")
    if spec.rule == "heatbath":
        lines += [f"{indent}w = table[b, {b}, code]",
                  f"{indent}t = u * w[{q - 1}]",
                  f"{indent}new = 0",
                  f"{indent}for j in range({q - 1}):",
                  f"{indent}    if t > w[j]:",
                  f"{indent}        new += 1",
                  f"{indent}if new != row[x]:",
                  f"{indent}    row[x] = new",
                  f"{indent}    n_acc += 1"]  # fmt: skip
    else:
        lines += [f"{indent}if u < table[b, {b}, code]:",
                  f"{indent}    row[x] = new",
                  f"{indent}    n_acc += 1"]  # fmt: skip
    return lines


def _numba_wraps(spec: KernelSpec, axis: int, indent: str) -> list[str]:
    lines = []
    for o in sorted({off[axis] for off in _offsets(spec)} - {0}):
        name = _wrapped(axis, o)
        if o > 0:
            lines += [f"{indent}{name} = i{axis} + {o}",
                      f"{indent}if {name} >= L{axis}:", f"{indent}    {name} -= L{axis}"]  # fmt: skip
        else:
            lines += [f"{indent}{name} = i{axis} - {-o}",
                      f"{indent}if {name} < 0:", f"{indent}    {name} += L{axis}"]  # fmt: skip
    return lines


def _numba_colours(spec: KernelSpec, q: int, nb: int) -> list[str]:
    lines = [
        "",
        "@njit(cache=True, nogil=True)",
        "def update(s, colour, c, key, pkey, path_key, draw0, first, table, accepted, cells):",
        "    n = s.shape[1]",
        *[f"    L{a} = cells[{a}]" for a in range(spec.ndim)],
        f"    ncell = n // {nb}",
        "    for b in range(s.shape[0]):",
        "        row = s[b]",
        "        n_acc = 0",
        "        ubase = np.uint64(first + b) * np.uint64(n)",
        "        pbase = np.uint64(first + b) * np.uint64("
        f"{'ncell' if spec.proposal_per_cell else 'n'})",
    ]
    indent = "        "
    for axis in range(spec.ndim):
        lines.append(f"{indent}for i{axis} in range(L{axis}):")
        indent += "    "
        lines += _numba_wraps(spec, axis, indent)
    lines.append(f"{indent}cell = {_cell_expr(spec, (0,) * spec.ndim)}")
    for b in range(nb):
        lines.append(f"{indent}x = {'cell' if nb == 1 else f'cell * {nb} + {b}'}")
        lines.append(f"{indent}if colour[x] == c:")
        pindex = f"pbase + np.uint64({'cell' if spec.proposal_per_cell else 'x'})"
        lines += _numba_decide(spec, b, indent + "    ", "key", "ubase + np.uint64(x)", pindex)
    lines.append("        accepted[b] += n_acc")
    return lines


def _numba_random(spec: KernelSpec, q: int, nb: int) -> list[str]:
    d = spec.draws_per_update
    lines = [
        "",
        "@njit(cache=True, nogil=True)",
        "def update(s, colour, c, key, pkey, path_key, draw0, first, table, accepted, cells):",
        "    n = s.shape[1]",
        *[f"    L{a} = cells[{a}]" for a in range(spec.ndim)],
        "    for b in range(s.shape[0]):",
        "        row = s[b]",
        "        n_acc = 0",
        "        stream = np.uint64(first + b)",
        "        for t in range(n):",
        f"            draw = np.uint64(draw0 + {d} * t)",
        "            skey = mix(path_key + (draw + np.uint64(1)) * G)",
        "            x = np.int64(below(skey, stream, n))",
        f"            cell = x // {nb}",
        "            rest = cell",
    ]
    indent = "            "
    for axis in reversed(range(spec.ndim)):
        lines.append(f"{indent}i{axis} = rest % L{axis}")
        lines.append(f"{indent}rest = rest // L{axis}")
    for axis in range(spec.ndim):
        lines += _numba_wraps(spec, axis, indent)
    if spec.rule == "metropolis":
        lines.append(f"{indent}pkey = mix(path_key + (draw + np.uint64(2)) * G)")
    lines.append(f"{indent}ukey = mix(path_key + (draw + np.uint64({d})) * G)")
    for b in range(nb):
        inner = indent if nb == 1 else indent + "    "
        if nb > 1:
            lines.append(f"{indent}{'if' if b == 0 else 'elif'} x % {nb} == {b}:")
        lines += _numba_decide(spec, b, inner, "ukey", "stream", "stream")
    lines.append("        accepted[b] += n_acc")
    return lines


# ------------------------------------------------------------------------- Triton (GPU)
def triton_source(spec: KernelSpec) -> str:
    """A module defining the Triton kernel ``update`` with the arguments of the numba one (as
    pointers and scalars). Colours: a grid of (B, cdiv(N, BLOCK)) programs, each a block of one
    chain's sites, or (FLAT, small lattices) cdiv(B N, BLOCK) programs over all chains' sites;
    random sites: (B,) programs, one chain each."""
    q, nb = spec.q, spec.basis
    ftype = "tl.float32" if spec.float_bits == 24 else "tl.float64"
    lines = _header(spec, "triton") + [
        "import triton",
        "import triton.language as tl",
        "",
        "",
        "@triton.jit",
        "def bits(key, index):",
        f"    z = key + index * {GAMMA}",
        f"    z = (z ^ (z >> 30)) * {C1}",
        f"    return (z ^ (z >> 27)) * {C2}",
        "",
        "",
        "@triton.jit",
        "def uniform(key, index):",
        f"    return (bits(key, index) >> {64 - spec.float_bits}).to({ftype}) "
        f"* (2.0 ** -{spec.float_bits})",
        "",
        "",
        "@triton.jit",
        "def below(key, index, n):",
        "    return ((bits(key, index) >> 32) * n) >> 32",
        "",
        "",
        "@triton.jit",
        "def mix(z):",
        f"    z = (z ^ (z >> 30)) * {C1}",
        f"    z = (z ^ (z >> 27)) * {C2}",
        "    return z ^ (z >> 31)",
        "",
    ]
    args = ("s_ptr, colour_ptr, c, key, pkey, path_key, draw0, first, table_ptr, accepted_ptr, "
            + ", ".join(f"L{a}" for a in range(spec.ndim))
            + ", n, chains, BLOCK: tl.constexpr, FLAT: tl.constexpr")
    lines += ["", "@triton.jit", f"def update({args}):", f"    ncell = n // {nb}"]
    if spec.schedule == "colours":
        lines += [
            "    if FLAT:  # small lattices: a block spans chains (one program per launch)",
            "        at = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)",
            "        b = at // n",
            "        x = at % n",
            "        inside = at < chains * n",
            "    else:  # a block within one chain: grid (chains, cdiv(n, BLOCK))",
            "        b = tl.program_id(0)",
            "        x = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)",
            "        inside = x < n",
            "    row = s_ptr + b.to(tl.int64) * n",
            "    mine = inside & (tl.load(colour_ptr + x, mask=inside, other=-1) == c)",
            "    stream = (first + b).to(tl.uint64)",
            "    uindex = stream * n + x.to(tl.uint64)",
        ]
    else:
        d = spec.draws_per_update
        lines += [
            "    b = tl.program_id(0)",
            "    row = s_ptr + b.to(tl.int64) * n",
            "    stream = (first + b).to(tl.uint64)",
            "    n_acc = tl.full((), 0, tl.int64)",
            "    for t in range(n):",
            f"        draw = (draw0 + {d} * t).to(tl.uint64)",
            f"        skey = mix(path_key + (draw + 1) * {GAMMA})",
            "        x = below(skey, stream, n).to(tl.int64)",
            "        mine = x >= 0",
            "        uindex = stream",
        ]
    ind = "    " if spec.schedule == "colours" else "        "
    lines.append(f"{ind}cell = x // {nb}")
    lines.append(f"{ind}rest = cell")
    for axis in reversed(range(spec.ndim)):
        lines += [f"{ind}i{axis} = rest % L{axis}", f"{ind}rest = rest // L{axis}"]
    for axis in range(spec.ndim):
        for o in sorted({off[axis] for off in _offsets(spec)} - {0}):
            name = _wrapped(axis, o)
            if o > 0:
                lines.append(f"{ind}{name} = tl.where(i{axis} + {o} >= L{axis}, "
                             f"i{axis} + {o - 0} - L{axis}, i{axis} + {o})")  # fmt: skip
            else:
                lines.append(f"{ind}{name} = tl.where(i{axis} < {-o}, i{axis} - {-o} + L{axis}, "
                             f"i{axis} - {-o})")  # fmt: skip
    if spec.rule in ("flip", "metropolis"):
        lines.append(f"{ind}k = tl.load(row + x, mask=mine, other=0).to(tl.int32)")
    if spec.rule == "flip":
        lines.append(f"{ind}new = {q - 1} - k")
    elif spec.rule == "metropolis":
        if spec.schedule == "colours":
            width, at = ("ncell", "cell") if spec.proposal_per_cell else ("n", "x")
            lines.append(f"{ind}pindex = stream * {width} + {at}.to(tl.uint64)")
            lines.append(f"{ind}pk = pkey")
        else:
            lines.append(f"{ind}pindex = stream")
            lines.append(f"{ind}pk = mix(path_key + (draw + 2) * {GAMMA})")
        lines.append(f"{ind}new = (k + 1 + below(pk, pindex, {q - 1}).to(tl.int32)) % {q}")
    lead = {"flip": ["k"], "metropolis": ["k", "new"], "heatbath": []}[spec.rule]
    for b in range(nb):
        digits = lead + [f"tl.load(row + {_site_expr(spec, r)}, mask=mine, other=0).to(tl.int32)"
                         for r in spec.reads[b]]  # fmt: skip
        code = "0"
        for dgt in reversed(digits):
            code = dgt if code == "0" else f"{dgt} + {q} * ({code})"
        lines.append(f"{ind}code{b} = {code}")
    code = f"code{nb - 1}"
    for b in reversed(range(nb - 1)):
        code = f"tl.where(x % {nb} == {b}, code{b}, {code})"
    lines.append(f"{ind}code = {code}")
    if spec.schedule == "colours":
        lines.append(f"{ind}u = uniform(key, uindex)")
    else:
        lines.append(f"{ind}u = uniform(mix(path_key + (draw + {spec.draws_per_update}) * "
                     f"{GAMMA}), uindex)")  # fmt: skip
    entry = f"(b * {nb} + x % {nb}).to(tl.int64) * {spec.table_width} + code"
    if spec.rule == "heatbath":
        lines.append(f"{ind}w = table_ptr + ({entry}) * {q}")
        lines.append(f"{ind}t = u * tl.load(w + {q - 1}, mask=mine, other=0.0)")
        lines.append(f"{ind}new = tl.zeros_like(code)")
        for j in range(q - 1):
            lines.append(f"{ind}new += (t > tl.load(w + {j}, mask=mine, other=0.0)).to(tl.int32)")
        lines.append(f"{ind}old = tl.load(row + x, mask=mine, other=0).to(tl.int32)")
        lines.append(f"{ind}accept = mine & (new != old)")
    else:
        lines.append(f"{ind}accept = mine & (u < tl.load(table_ptr + {entry}, mask=mine, "
                     "other=0.0))")  # fmt: skip
    lines.append(f"{ind}tl.store(row + x, new.to(tl.int8), mask=accept)")
    if spec.schedule == "colours":
        lines += [f"{ind}if FLAT:",
                  f"{ind}    tl.atomic_add(accepted_ptr + b, accept.to(tl.int64), mask=accept)",
                  f"{ind}else:",
                  f"{ind}    tl.atomic_add(accepted_ptr + b, tl.sum(accept.to(tl.int64)))"]
    else:
        lines.append(f"{ind}n_acc += accept.to(tl.int64)")
        lines.append("    tl.store(accepted_ptr + b, tl.load(accepted_ptr + b) + n_acc)")
    return "\n".join(lines) + "\n"


__all__ = ["KernelSpec", "MAX_CODES", "ineligible", "numba_source", "triton_source"]
