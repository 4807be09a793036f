"""Generated local-update kernels (numba on the CPU; Triton through its interpreter).

A generated kernel must make the same chains as the torch path: same random streams, same
neighbourhoods, same acceptance. So every case compares the configurations, the acceptance
counts and the streams' draw counters bit for bit after several sweeps, for Metropolis and heat
bath, colour-parallel and random-site schedules, on spin, Potts and spin-1 domains and on
lattices with and without a basis. Statistics against exact enumeration follow (4x4 Ising,
3x3 Potts). Triton runs under TRITON_INTERPRET=1, on the CPU, where it is installed (a test
extra: the CPU torch wheel does not bring it).
"""

from __future__ import annotations

import ast
import itertools
import math
import os

import numpy as np
import pytest
import torch

import physml_lang
from physml_lang.catalogue import CATALOGUE
from physml_lang.runtime.random import RandomStreams

if not torch.cuda.is_available():  # before Triton is imported anywhere; with a GPU, the
    os.environ.setdefault("TRITON_INTERPRET", "1")  # kernels compile for it (gpu tests)

MODELS = """
model Ising(L: int = 4, h: real = 0.3) {
    lattice square(L, L, boundary = periodic)
    field s: spin on sites
    energy E = -sum(s[i] * s[j] for (i, j) in bonds) - h * sum(s[i] for i in sites)
}
model Potts(L: int = 6) {
    lattice square(L, L)
    field s: potts(3) on sites
    energy E = -sum(delta(s[i], s[j]) for (i, j) in bonds)
}
model Honey(L: int = 4) {
    lattice honeycomb(L, L)
    field s: spin on sites
    energy E = -sum(s[i] * s[j] for (i, j) in bonds) - 0.2 * sum(s[i] for i in sites)
}
model Tri(L: int = 6) {
    lattice triangular(L, L)
    field s: spin(1) on sites
    energy E = sum(s[i] * s[j] for (i, j) in bonds) + 0.3 * sum(s[i]^2 for i in sites)
}
"""
PROGRAM = physml_lang.compile(MODELS)


def _chains(model: str, sampler: str, update: str, kernel: str, sweeps: int,
            betas=(0.3, 0.6, 1.0), device: str = "cpu"):  # fmt: skip
    """Configurations, acceptance counts, draw counter and kernel note after ``sweeps``."""
    cm = PROGRAM.model(model).to(device)
    entry = CATALOGUE.samplers.lookup(sampler, "lattice")
    if entry.implementation is None:
        from physml_lang.runtime.tasks import bind_runtime

        bind_runtime()
    opts = entry.schema(chains=len(betas), update=update, kernel=kernel)
    # first = 2: the chains are a slice of a larger batch (streams 2, 3, 4)
    smp = entry.implementation(cm, opts, torch.tensor(betas, device=device),
                               RandomStreams(5, device, first=2))  # fmt: skip
    state = smp.initial_state()
    for _ in range(sweeps):
        state = smp.sweep(state)
    return state["s"], smp.accepted, smp.streams.draws, smp.kernel_note


CASES = list(itertools.product(["Ising", "Potts", "Honey", "Tri"], ["metropolis", "heatbath"],
                               ["auto", "random"]))  # fmt: skip


def _same_chains(backend: str, model: str, sampler: str, update: str, sweeps: int,
                 device: str = "cpu") -> None:  # fmt: skip
    s, acc, draws, note = _chains(model, sampler, update, backend, sweeps, device=device)
    assert note == backend, note
    s0, acc0, draws0, note0 = _chains(model, sampler, update, "torch", sweeps, device=device)
    assert note0.startswith("torch")
    assert torch.equal(s, s0)
    assert torch.equal(acc, acc0)
    assert draws == draws0
    assert acc.sum() > 0


@pytest.mark.parametrize("model,sampler,update", CASES)
def test_numba_kernel_makes_the_torch_paths_chains(model, sampler, update):
    _same_chains("numba", model, sampler, update, 12 if update == "auto" else 3)


def _triton():
    pytest.importorskip("triton")
    if os.environ.get("TRITON_INTERPRET") != "1":
        pytest.skip("TRITON_INTERPRET was set to something else before this module")


@pytest.mark.parametrize("model,sampler", list(itertools.product(
    ["Ising", "Potts", "Honey", "Tri"], ["metropolis", "heatbath"])))  # fmt: skip
def test_triton_kernel_makes_the_torch_paths_chains(model, sampler):
    """Colour-parallel updates through Triton's interpreter: the same chains, bit for bit."""
    _triton()
    _same_chains("triton", model, sampler, "auto", 6)


@pytest.mark.gpu
@pytest.mark.parametrize("model,sampler,update", CASES)
def test_compiled_triton_kernel_on_cuda_makes_the_torch_paths_chains(model, sampler, update):
    """On a GPU: the compiled Triton kernel (not the interpreter) against the torch path on
    CUDA, bit for bit."""
    pytest.importorskip("triton")
    _same_chains("triton", model, sampler, update, 12 if update == "auto" else 2, "cuda")


@pytest.mark.parametrize("model,sampler", [("Ising", "metropolis"), ("Potts", "metropolis"),
                                           ("Honey", "heatbath"), ("Tri", "metropolis")])
def test_triton_random_site_kernel_makes_the_torch_paths_chains(model, sampler):
    _triton()
    _same_chains("triton", model, sampler, "random", 2)


@pytest.mark.parametrize("backend", ["numba", "triton"])
def test_deterministic_updates_at_zero_temperature(backend):
    """beta -> infinity with a field (no zero energy changes): every update is decided by the
    sign of dE alone, so the kernel's indexing alone decides the result."""
    if backend == "triton":
        _triton()
    s, _, _, note = _chains("Ising", "metropolis", "auto", backend, 4, betas=(1e4, 1e4))
    s0, _, _, _ = _chains("Ising", "metropolis", "auto", "torch", 4, betas=(1e4, 1e4))
    assert note == backend
    assert torch.equal(s, s0)


# ------------------------------------------------------------------------- exact statistics
def _exact_mean_energy(cm, beta: float) -> float:
    """<E>/N by enumerating every configuration of a small lattice."""
    domain = cm.model.fields["s"].domain.values()
    N = cm.lattice.n_sites
    confs = torch.tensor(list(itertools.product(domain, repeat=N)), dtype=torch.float64)
    E = cm.energy({"s": confs.reshape(-1, *cm.lattice.shape).to(cm.dtype)}).double()
    w = torch.exp(-beta * (E - E.min()))
    return float((w * E).sum() / w.sum()) / N


@pytest.mark.parametrize("backend,model,L,sampler,beta", [
    ("numba", "Ising", 4, "metropolis", 0.4),
    ("numba", "Potts", 3, "heatbath", 1.0),
    ("numba", "Potts", 3, "metropolis", 1.0),
    ("triton", "Ising", 4, "metropolis", 0.4),
    ("triton", "Potts", 3, "heatbath", 1.0),
])  # fmt: skip
def test_kernel_statistics_match_exact_enumeration(backend, model, L, sampler, beta):
    """<E>/N from the generated kernel within 4 standard errors (independent chains) of the
    exact value: 4x4 Ising in a field h = 0.3 (65536 states), 3x3 three-state Potts."""
    if backend == "triton":
        _triton()
    program = physml_lang.compile(MODELS.replace("L: int = 4", f"L: int = {L}")
                                  .replace("L: int = 6", f"L: int = {L}"))  # fmt: skip
    cm = program.model(model)
    exact = _exact_mean_energy(cm, beta)
    chains, sweeps = (64, 400) if backend == "numba" else (32, 200)
    smp = program.sampler(sampler, model=model, beta=beta, chains=chains, seed=3, kernel=backend)
    assert smp.kernel_note == backend
    state = smp.initial_state()
    for _ in range(50 if backend == "numba" else 20):
        state = smp.sweep(state)
    e = []
    for _ in range(sweeps):
        state = smp.sweep(state)
        e.append(cm.energy(state).double() / cm.lattice.n_sites)
    per_chain = torch.stack(e).mean(0).numpy()  # chains are independent
    mean, err = per_chain.mean(), per_chain.std(ddof=1) / math.sqrt(chains)
    assert abs(mean - exact) < 4 * err, (mean, err, exact)
    assert err < 0.03


# ------------------------------------------------------------------------- emitted source
USER_NAMES = """
model Zq(Lsize_user: int = 8, Jcoupling_user: real = 1.0) {
    lattice square(Lsize_user, Lsize_user)
    field spinfield_user: spin on sites
    energy E = -Jcoupling_user * sum(spinfield_user[i] * spinfield_user[j] for (i, j) in bonds)
}
"""


@pytest.mark.parametrize("emit", ["triton", "numba"])
def test_emitted_kernels_hold_no_user_text(emit: str):
    """The kernel is generated from the IR only: user names appear in comments, never in code,
    and the code parses."""
    cm = physml_lang.compile(USER_NAMES).model("Zq")
    source = getattr(cm, f"emit_{emit}")()
    for chunk in source.split("\n\n\n# generated")[:1]:
        ast.parse(chunk)
    code = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith("#"))
    for name in ("Lsize_user", "Jcoupling_user", "spinfield_user", "Zq"):
        assert name not in code
    assert "spinfield_user" in source  # named in the comment that prints the local energy


def test_cli_emits_triton_and_says_where_no_kernel_applies(tmp_path):
    from physml_lang.cli import main

    path = tmp_path / "m.phys"
    path.write_text(MODELS.replace("boundary = periodic", "boundary = open"))
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["compile", str(path), "--emit", "triton"]) == 0
    text = out.getvalue()
    assert "kernels are generated for periodic lattices" in text
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["compile", str(path), "--emit", "triton", "--model", "Potts"]) == 0
    assert "@triton.jit" in out.getvalue()


def test_a_kernel_that_fails_to_build_falls_back_to_torch(monkeypatch):
    """A broken generated module: the torch path runs, and the reason is kept."""
    from physml_lang.runtime import local_kernels

    def broken(source, name):
        raise SyntaxError("generated source did not compile")

    monkeypatch.setattr(local_kernels, "load_module", broken)
    s, acc, _, note = _chains("Ising", "metropolis", "auto", "numba", 2)
    assert note.startswith("the generated numba kernel failed to build")
    s0, acc0, _, _ = _chains("Ising", "metropolis", "auto", "torch", 2)
    assert torch.equal(s, s0) and torch.equal(acc, acc0)


def test_a_kernel_that_fails_to_compile_falls_back_before_the_run(monkeypatch, tmp_path):
    """numba compiles on the first call: a typing error there is caught when the sampler is
    built, and the chains are the torch path's."""
    from physml_lang.runtime import local_kernels

    monkeypatch.setenv("PHYSML_KERNEL_CACHE", str(tmp_path))  # the broken module stays there

    real = local_kernels.load_module

    def broken(source, name):
        return real(source.replace("n_acc += 1", "n_acc += 'x'"), name + "_broken")

    monkeypatch.setattr(local_kernels, "load_module", broken)
    s, acc, draws, note = _chains("Ising", "metropolis", "auto", "numba", 2)
    assert note.startswith("the generated numba kernel failed to build"), note
    s0, acc0, draws0, _ = _chains("Ising", "metropolis", "auto", "torch", 2)
    assert torch.equal(s, s0) and torch.equal(acc, acc0) and draws == draws0


def test_kernel_cache_folder_is_used(tmp_path, monkeypatch):
    monkeypatch.setenv("PHYSML_KERNEL_CACHE", str(tmp_path))
    from physml_lang.runtime import local_kernels

    monkeypatch.setattr(local_kernels, "_MODULES", {})
    _chains("Ising", "heatbath", "auto", "numba", 1)
    files = sorted(p.name for p in tmp_path.glob("*.py"))
    assert len(files) == 1 and files[0].endswith("_numba.py")
    assert np.all([f.startswith("k") for f in files])


def test_a_kernel_asked_for_that_cannot_run_is_a_located_warning(monkeypatch):
    monkeypatch.setenv("PHYSML_NO_NUMBA", "1")
    program = physml_lang.compile(MODELS + """
run a {
    model Ising(L = 4)
    sampler metropolis(chains = 4, sweeps = 20, burn_in = 5, kernel = numba)
    scan T in [2.0]
}
""")
    result = program.run("a", out=None, progress=False)
    sampler = result.summary["sampler"]
    assert sampler["kernel_used"].startswith("torch (numba is not available")
    (warning,) = [w for w in result.summary["warnings"] if w["code"] == "P703"]
    assert warning["span"]["line"] == 25 and "kernel = numba could not run" in warning["message"]
