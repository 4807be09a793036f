"""Data-parallel vmc (issue 21): the Metropolis chains sharded over processes, per-sample
quantities gathered in global sample order, every reduction on the whole arrays on every rank.
The rows, history and parameters of ``physml run FILE --nproc 2`` are those of one process bit
for bit, and a checkpoint written by one number of processes resumes on another.

The fast tests run the sharding in one process (several ``World`` objects, no process group);
the slow ones start ``physml run`` in subprocesses (gloo on the CPU, OMP_NUM_THREADS=1)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from physml_lang.compiler.derive.pauli import tfim
from physml_lang.runtime.distributed import World
from physml_lang.runtime.quantum.lattice import nearest_bonds, translation_table
from physml_lang.runtime.quantum.learners import (
    RBM,
    AutoregressiveGRU,
    ConvNet,
    SymmetrizedAutoregressive,
)
from physml_lang.runtime.quantum.operator import LocalOperator
from physml_lang.runtime.quantum.rbm_kernels import rbm_jacobian
from physml_lang.runtime.quantum.vmc import (
    IndependentDraws,
    MetropolisOptions,
    MetropolisSampler,
    local_energies,
    log_psi_jacobian,
    random_configs,
)
from physml_lang.runtime.random import RandomStreams

CPU = torch.device("cpu")
ROOT = Path(__file__).resolve().parents[2]

# Three paths of the sampler and the optimiser: the numba RBM kernel (flip moves) with SR; the
# generic Metropolis loop of a CNN with Adam (the force by one backward pass over the gathered
# samples); the complex (phased) RBM kernel with exchange moves and complex O with SR. Chain
# counts odd: the ranks hold blocks of different sizes.
SOURCE = """
import J1J2Chain

model TFIM(L: int = 8, J: real = 1.0, g: real = 1.0) {
    lattice chain(L, boundary = periodic)
    field s: qubit on sites
    hamiltonian H = -J * sum(Z[i] * Z[j] for (i, j) in bonds) - g * sum(X[i] for i in sites)
    symmetry translation, spin_flip
    observable Mx = sum(X[i] for i in sites) / L
}

learner psi = rbm(alpha = 2) respecting translation, spin_flip
learner conv = cnn(channels = [2], kernel_size = 3)
learner phased = rbm(alpha = 1, complex = true, init_std = 0.05) respecting translation
learner ar = rnn(hidden = 8, magnetization = 0, phase = marshall) respecting translation

run rbm_sr {
    model TFIM(L = 8)
    learner psi
    sampler metropolis(chains = 7, sweeps = 0.5)
    optimize psi via sr(lr = 0.05, diag_shift = 0.01)
    iterations ITERATIONS
    checkpoint every = 5
    samples 210, final = 2100
    reference exact
    measure energy, variance, Mx, structure_factor
}

run cnn_adam {
    model TFIM(L = 6)
    learner conv
    sampler metropolis(chains = 5, burn_in = 1, initial_burn_in = 5)
    optimize conv via adam(lr = 0.01)
    iterations 6
    samples 40, final = 200
    reference none
    measure energy, variance, Mx
}

run phased_exchange {
    model J1J2Chain(L = 6, J2 = 0.5)
    learner phased
    sampler metropolis(chains = 9, move = exchange, magnetization = 0)
    optimize phased via sr(lr = 0.05, diag_shift = 0.01)
    iterations 8
    samples 180, final = 900
    reference none
    measure energy, variance, staggered_magnetization
}

run rnn_exact {
    model J1J2Chain(L = 6, J2 = 0.0)
    learner ar
    sampler autoregressive
    pretrain 3 via adam(lr = 0.01)
    optimize ar via adam(lr = 0.01)
    iterations 4
    samples 101, final = 301
    reference none
    measure energy, variance
}
"""


# ---------------------------------------------------------------- fast: one process


def test_per_sample_quantities_do_not_depend_on_the_batch():
    """The premise of gathering: local energies, log psi and O of a sample are the same bits
    whether computed with all samples or with a block of them (RBM closed forms, the generic
    local energy and the vmap'd Jacobian of a CNN)."""
    torch.manual_seed(0)
    n = 8
    op = LocalOperator(tfim(n, nearest_bonds((n,)), 1.0), device=CPU)
    g = torch.Generator(device="cpu").manual_seed(1)
    rbm, cnn = RBM(n, 2, init_std=0.3, generator=g), ConvNet((n,), (2,), generator=g)
    s = random_configs(150, n, RandomStreams(3))
    cuts = [0, 64, 107, 150]
    quantities = [
        lambda x: local_energies(op, rbm, x),
        lambda x: rbm_jacobian(rbm.rbm_form(), x),
        lambda x: local_energies(op, cnn, x),
        lambda x: log_psi_jacobian(cnn, x),
    ]
    for f in quantities:
        blocks = torch.cat([f(s[a:b]) for a, b in zip(cuts, cuts[1:])])
        assert torch.equal(f(s), blocks)


class _NoPeers(World):
    """A rank of a world of ``size`` whose collectives see only its own block (the ranks run
    one after another in this process: no process group)."""

    def all_gather(self, local, n, dim=0):
        return local


@pytest.mark.parametrize("move", ["flip", "exchange"])
@pytest.mark.parametrize("fast", [True, False])
def test_sharded_chains_are_the_blocks_of_one_process_chains(move, fast):
    """Each rank's sampler runs its block of the chains: the samples of the ranks, joined in
    rank order, are one process's samples, whichever backend (numba kernel or generic loop);
    a checkpoint's whole chains give each rank its block."""
    n, chains = 6, 7
    g = torch.Generator(device="cpu").manual_seed(2)
    model = RBM(n, 1, init_std=0.3, generator=g)
    opts = MetropolisOptions(n_chains=chains, move=move, fast=fast, initial_burn_in_sweeps=3,
                             magnetization=0 if move == "exchange" else None)  # fmt: skip
    alone = MetropolisSampler(n, opts)
    one = alone.sample(model, 28, RandomStreams(5, path=(1,)))
    blocks = []
    for rank in range(3):
        world = _NoPeers(rank, 3)
        sampler = MetropolisSampler(n, opts, world=world)
        sl = sampler.local_chains()
        assert sl == world.shard(chains)
        streams = RandomStreams(5, path=(1,))
        blocks.append(sampler.sample(model, 28, streams))
        assert streams.first == 0  # the sampler's offset does not leak into the family
        assert blocks[-1].shape == (4, sl.stop - sl.start, n)
        sampler.load_state_tensors(alone.state_tensors())
        assert torch.equal(sampler.chains, alone.chains[sl])
    assert torch.equal(torch.cat(blocks, dim=1), one)
    assert MetropolisSampler(n, opts.model_copy(update={"n_chains": 2}),
                             world=_NoPeers(0, 3)).local_chains() is None  # fmt: skip


def test_sharded_exact_draws_are_the_blocks_of_one_process_draws():
    """Autoregressive draws sharded by sample (sample b from stream b on whichever rank): the
    ranks' blocks joined are one process's draws, and the log-derivatives of a block are the
    rows of the whole batch's."""
    n = 6
    g = torch.Generator(device="cpu").manual_seed(4)
    gru = AutoregressiveGRU(n, hidden=8, magnetization=0, generator=g)
    model = SymmetrizedAutoregressive(gru, translation_table((n,)))
    alone = RandomStreams(7)
    one = IndependentDraws(n).sample(model, 50, alone)
    blocks = []
    for rank in range(3):
        sampler = IndependentDraws(n, _NoPeers(rank, 3))
        streams = RandomStreams(7)
        blocks.append(sampler.sample(model, 50, streams))
        assert streams.first == 0 and streams.draws == alone.draws
        assert sampler.local_chains() == _NoPeers(rank, 3).shard(50)
    assert one.shape == (50, 1, n) and torch.equal(torch.cat(blocks), one)
    s = one.reshape(-1, n)
    whole = log_psi_jacobian(model, s)
    assert torch.equal(torch.cat([log_psi_jacobian(model, s[:17]), log_psi_jacobian(model, s[17:])]),
                       whole)  # fmt: skip


# ---------------------------------------------------------------- slow: processes


def _physml(*args: str, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "physml_lang.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def _write(tmp: Path, iterations: int = 30) -> Path:
    path = tmp / "vmc_small.phys"
    path.write_text(SOURCE.replace("ITERATIONS", str(iterations)))
    return path


def _same_results(d1: Path, d2: Path) -> None:
    a, b = (json.loads((d / "summary.json").read_text()) for d in (d1, d2))
    assert a["rows"] == b["rows"]
    assert (d1 / "history.csv").read_text() == (d2 / "history.csv").read_text()
    p1, p2 = load_file(d1 / "params.safetensors"), load_file(d2 / "params.safetensors")
    assert p1.keys() == p2.keys()
    for k in p1:
        assert p1[k].dtype == p2[k].dtype and torch.equal(p1[k], p2[k]), k


@pytest.mark.slow
@pytest.mark.parametrize("run", ["rbm_sr", "cnn_adam", "phased_exchange", "rnn_exact"])
def test_two_processes_give_the_rows_and_parameters_of_one(tmp_path, run):
    """``--nproc 2`` (gloo, chains split 4 + 3, 3 + 2, 5 + 4) and one process: the same rows
    (summary.json), history and parameters, bit for bit."""
    src = _write(tmp_path)
    times = {}
    for nproc, out in ((1, "D1"), (2, "D2")):
        start = time.perf_counter()
        p = _physml("run", str(src), "--run", run, "--nproc", str(nproc), "--out", out,
                    "--quiet", cwd=tmp_path)  # fmt: skip
        times[nproc] = time.perf_counter() - start
        assert p.returncode == 0, p.stderr[-2000:]
    _same_results(tmp_path / "D1", tmp_path / "D2")
    summary = json.loads((tmp_path / "D2" / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["complete"]
    print(f"{run}: 1 process {times[1]:.1f} s, 2 processes {times[2]:.1f} s")


def _interrupted_at_a_checkpoint(src: Path, out: Path, nproc: int) -> None:
    """Start ``run rbm_sr`` and interrupt it (SIGINT, as Ctrl-C) once its first checkpoint is
    on disk."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "physml_lang.cli", "run", str(src), "--run",
                             "rbm_sr", "--nproc", str(nproc), "--out", str(out),
                             "--quiet"], cwd=src.parent, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    ckpt = out / "checkpoint.safetensors"
    deadline = time.monotonic() + 300
    while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    assert proc.returncode != 0, "the run finished before it could be interrupted"
    assert "P701" in err.decode(), err.decode()[-2000:]
    assert ckpt.exists()


@pytest.mark.slow
@pytest.mark.parametrize(("first", "then"), [(2, 1), (1, 2)])
def test_a_checkpoint_resumes_on_another_number_of_processes(tmp_path, first, then):
    """Interrupted on ``first`` processes after a checkpoint, resumed on ``then``: the rows,
    history and parameters of an uninterrupted one-process run."""
    src = _write(tmp_path, iterations=60)
    p = _physml("run", str(src), "--run", "rbm_sr", "--out", "D1", "--quiet",
                cwd=tmp_path)  # fmt: skip
    assert p.returncode == 0, p.stderr[-2000:]
    _interrupted_at_a_checkpoint(src, tmp_path / "R", first)
    p = _physml("run", str(src), "--run", "rbm_sr", "--nproc", str(then), "--out", "R",
                "--resume", "--quiet", cwd=tmp_path)  # fmt: skip
    assert p.returncode == 0, p.stderr[-2000:]
    resumed = json.loads((tmp_path / "R" / "summary.json").read_text())
    assert resumed["resumed"] and resumed["complete"]
    _same_results(tmp_path / "D1", tmp_path / "R")
