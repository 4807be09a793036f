"""Runs on several processes (torch.distributed, gloo on the CPU): the same rows bit for bit on
one process or N, resumable on another number, and faults that stop the run with a located
error instead of a hang. Parallel tempering itself is validated against exact enumeration.

The multi-process tests start real process groups (``physml run --nproc N``, ``torchrun``)
and are slow; the default suite checks the sharding, the environment and parallel tempering
on one process."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import physml_lang
from physml_lang.cli import main
from physml_lang.diagnostics import Diagnostic, PhysmlError
from physml_lang.runtime.distributed import SINGLE, World, environment_world

ISING = """
model Ising(L: int = 4, J: real = 1.0, h: real = 0.0) {
    lattice square(L, L, boundary = periodic)
    field s: spin on sites
    energy E = -J * sum(s[i] * s[j] for (i, j) in bonds) - h * sum(s[i] for i in sites)
    symmetry spin_flip if h == 0
}
"""

RUNS = ISING + """
run tempering {
    model Ising(L = 8)
    sampler metropolis(chains = 3, sweeps = 150, burn_in = 30, exchange = 3)
    scan T in linspace(1.8, 3.0, 5)
    measure energy_per_site = energy / sites, abs_magnetization = abs(magnetization) / sites,
            specific_heat
}

run heatbath_tempering {
    model Ising(L = 6)
    sampler heatbath(chains = 2, sweeps = 100, burn_in = 10, exchange = 2, kernel = torch)
    scan T in [2.0, 2.6, 2.3, 3.2]
    measure energy
}

run field_scan {
    model Ising(L = 6)
    sampler metropolis(chains = 3, sweeps = 100, burn_in = 20)
    let T = 2.5
    scan h in linspace(0, 0.6, 5)
    measure energy_per_site = energy / sites
}
"""


# ---------------------------------------------------------------- the sharding, one process


@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_shards_cover_every_item_once_in_order(size):
    for n in range(0, 23):
        blocks = [World(r, size).shard(n) for r in range(size)]
        assert [i for b in blocks for i in range(b.start, b.stop)] == list(range(n))
        lengths = [b.stop - b.start for b in blocks]
        assert max(lengths) - min(lengths) <= 1


def test_one_process_communicates_nothing():
    t = torch.arange(6.0, device="cpu")
    assert SINGLE.all_gather(t, 6) is t
    assert SINGLE.gather_objects({"a": 1}) == [{"a": 1}]
    assert SINGLE.any(True) and not SINGLE.any(False)
    SINGLE.raise_first(None)
    with pytest.raises(PhysmlError):
        SINGLE.raise_first(PhysmlError(Diagnostic("P706", "x")))


@pytest.mark.parametrize("env, expected", [
    ({}, None),
    ({"PHYSML_RANK": "1", "PHYSML_WORLD_SIZE": "3", "PHYSML_STORE": "/s"}, (1, 3, 1, "file:///s")),
    ({"RANK": "2", "WORLD_SIZE": "4", "LOCAL_RANK": "0"}, (2, 4, 0, "env://")),
    ({"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1"}, (5, 8, 1, None)),
    ({"SLURM_PROCID": "0", "SLURM_NTASKS": "1"}, None),
])  # fmt: skip
def test_the_launchers_environment_names_the_processes(monkeypatch, env, expected):
    for key in ("PHYSML_RANK", "PHYSML_WORLD_SIZE", "PHYSML_STORE", "RANK", "WORLD_SIZE",
                "LOCAL_RANK", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"):  # fmt: skip
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert environment_world() == expected


def test_impossible_process_settings_are_located_errors(tmp_path, capsys):
    src = tmp_path / "m.phys"
    src.write_text(RUNS)
    assert main(["run", str(src), "--nproc", "0", "--out", str(tmp_path / "o")]) == 1
    assert "P706" in capsys.readouterr().err
    assert main(["run", str(src), "--collective-timeout", "-1", "--out", str(tmp_path / "o")]) == 1
    assert "P706" in capsys.readouterr().err


def _exact_energy_per_site(L: int, T: float) -> float:
    """<E>/N of the L x L periodic Ising model (J = 1) by enumerating its 2^(L^2) states."""
    n = L * L
    states = ((np.arange(2**n)[:, None] >> np.arange(n)) & 1) * 2 - 1
    s = states.reshape(-1, L, L).astype(np.float64)
    energy = -(s * np.roll(s, 1, 1)).sum((1, 2)) - (s * np.roll(s, 1, 2)).sum((1, 2))
    w = np.exp(-(energy - energy.min()) / T)
    return float((w * energy).sum() / w.sum() / n)


def test_parallel_tempering_samples_the_boltzmann_distribution():
    """L = 4 (exact by enumeration): every temperature of the ladder within 4 error bars,
    replicas exchanged at every neighbouring pair."""
    program = physml_lang.load(ISING + """
run pt {
    model Ising(L = 4)
    sampler metropolis(chains = 8, sweeps = 3000, burn_in = 200, exchange = 2)
    scan T in [1.5, 2.0, 2.5, 3.0, 3.5]
    measure energy_per_site = energy / sites
}
""")
    rows = program.run("pt", seed=3).rows
    for row in rows:
        exact = _exact_energy_per_site(4, row["T"])
        got = row["energy_per_site"]
        assert abs(got["mean"] - exact) < 4 * got["stderr"] + 1e-9, (row["T"], got, exact)
    rates = [r["exchange_acceptance"] for r in rows if "exchange_acceptance" in r]
    assert len(rates) == 4 and all(0.05 < r < 1 for r in rates)


def test_the_exchange_stream_leaves_the_chains_streams_alone():
    """Exchanges draw from their own stream: with exchange longer than the run (no exchange
    happens) the rows are those of exchange = 0 exactly, which has no exchange column."""
    program = physml_lang.load(RUNS)
    plain = program.run("tempering", sets={"exchange": 0}).rows
    never = program.run("tempering", sets={"exchange": 10_000}).rows
    assert all("exchange_acceptance" not in r for r in plain)
    assert [{k: v for k, v in r.items() if k != "exchange_acceptance"} for r in never] == plain


# ---------------------------------------------------------------- several processes (slow)


def _physml(*args: str, timeout: float = 300, **popen) -> subprocess.CompletedProcess:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    return subprocess.run([sys.executable, "-m", "physml_lang.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env=env, **popen)  # fmt: skip


def _rows(out: Path) -> list[dict]:
    return json.loads((out / "summary.json").read_text())["rows"]


@pytest.fixture(scope="module")
def program_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("dist") / "runs.phys"
    path.write_text(RUNS)
    return path


@pytest.fixture(scope="module")
def one_process(program_file) -> Path:
    out = program_file.parent / "one"
    r = _physml("run", str(program_file), "--out", str(out), "--quiet")
    assert r.returncode == 0, r.stderr
    return out


@pytest.mark.slow
@pytest.mark.parametrize("nproc", [2, 3])
def test_one_and_several_processes_give_the_same_rows_bit_for_bit(program_file, one_process,
                                                                   nproc):  # fmt: skip
    """Parallel tempering (replicas shared by the ranks; Metropolis with the generated kernel,
    heat-bath on the torch path, an unsorted ladder) and a scan of the field (points dealt out
    to the ranks): rows equal to one process's exactly, including uneven shards (3 ranks)."""
    out = program_file.parent / f"n{nproc}"
    r = _physml("run", str(program_file), "--out", str(out), "--quiet", "--nproc", str(nproc))
    assert r.returncode == 0, r.stderr
    for run in ("tempering", "heatbath_tempering", "field_scan"):
        assert _rows(out / run) == _rows(one_process / run), run
        assert json.loads((out / run / "summary.json").read_text())["processes"] == nproc
    assert r.stdout.count("rows in") == 3  # one report, from rank 0


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun is not on the PATH")
def test_torchrun_launches_the_same_run(program_file, one_process):
    out = program_file.parent / "torchrun"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run(["torchrun", "--standalone", "--nproc-per-node", "2", "--no-python",
                        "physml", "run", str(program_file), "--run-name", "tempering", "--out",
                        str(out), "--quiet"], capture_output=True, text=True, timeout=300,
                       env=env)  # fmt: skip
    if r.returncode != 0 and "physml" in r.stderr and "No such file" in r.stderr:
        pytest.skip("the physml command is not on the PATH")
    assert r.returncode == 0, r.stderr
    assert _rows(out) == _rows(one_process / "tempering")


LONG = ISING + """
run tempering {
    model Ising(L = 16)
    sampler metropolis(chains = 4, sweeps = 4000, burn_in = 100, exchange = 5)
    scan T in linspace(1.8, 3.0, 7)
    measure energy_per_site = energy / sites, specific_heat
}

run field_scan {
    model Ising(L = 12)
    sampler metropolis(chains = 4, sweeps = 3000, burn_in = 20)
    let T = 2.5
    scan h in linspace(0, 0.7, 8)
    measure energy_per_site = energy / sites
}
"""


def _children(pattern: str, rank: int) -> list[int]:
    """PIDs of the processes ``--nproc`` started for ``pattern`` with the given rank."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            env = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if pattern in cmd and f"PHYSML_RANK={rank}".encode() in env:
            found.append(int(entry.name))
    return found


def _wait_for(predicate, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.2)


def _rows_on_disk(out: Path) -> int:
    try:
        return len(_rows(out))
    except (OSError, json.JSONDecodeError):
        return 0


@pytest.fixture(scope="module")
def long_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("long") / "long.phys"
    path.write_text(LONG)
    return path


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("run, resume_with", [("tempering", "1"), ("field_scan", "3")])
def test_a_killed_run_resumes_on_another_number_of_processes(long_file, run, resume_with):
    """Kill a 2-process run after its first checkpoint (rank 1 killed outright for the scan),
    resume it on 1 or 3 processes: the rows of an uninterrupted run on one process."""
    out = long_file.parent / f"killed-{run}"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "physml_lang.cli", "run", str(long_file), "--run", run,
           "--out", str(out), "--quiet", "--nproc", "2", "--checkpoint-every", "0.5"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        if run == "tempering":
            _wait_for(lambda: (out / "checkpoint.safetensors").exists())
            time.sleep(1.0)
        else:
            _wait_for(lambda: _rows_on_disk(out) >= 2)
        for pid in _children(str(long_file), 1):
            os.kill(pid, signal.SIGKILL)
        _, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 1, err
    assert "process 1 of 2 was killed by signal 9" in err and "--resume" in err
    assert "Traceback" not in err
    kept = _rows_on_disk(out)
    r = _physml("run", str(long_file), "--run", run, "--out", str(out), "--quiet", "--resume",
                "--nproc", resume_with)  # fmt: skip
    assert r.returncode == 0, r.stderr
    reference = long_file.parent / f"reference-{run}"
    r = _physml("run", str(long_file), "--run", run, "--out", str(reference), "--quiet")
    assert r.returncode == 0, r.stderr
    assert _rows(out) == _rows(reference)
    assert json.loads((out / "summary.json").read_text()).get("resumed") is True
    assert run == "tempering" or kept >= 2


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs Linux /proc")
def test_a_stalled_process_is_a_timeout_not_a_hang(long_file):
    """A rank that stops answering (SIGSTOP): the others give up after --collective-timeout
    with a located P706, the finished rows stay on disk, no process is left behind."""
    out = long_file.parent / "stalled"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "physml_lang.cli", "run", str(long_file), "--run", "field_scan",
           "--out", str(out), "--quiet", "--nproc", "2", "--collective-timeout", "5"]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        _wait_for(lambda: _rows_on_disk(out) >= 2)
        stopped = _children(str(long_file), 1)
        for pid in stopped:
            os.kill(pid, signal.SIGSTOP)
        started = time.monotonic()
        _, err = p.communicate(timeout=120)
        waited = time.monotonic() - started
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 1, err
    assert "error[P706]" in err and "within 5 s" in err and "Traceback" not in err
    assert waited < 60
    assert _rows_on_disk(out) >= 2
    assert not any(_alive(pid) for pid in stopped)


def _alive(pid: int) -> bool:
    """Whether process ``pid`` still exists (a zombie awaiting its parent counts as gone)."""
    try:
        state = (Path(f"/proc/{pid}") / "status").read_text().split("State:")[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_exact_reference_is_right():
    """The enumeration above against the exact high-temperature limit: E/N -> 0, and the
    ground state -2 at low T."""
    assert abs(_exact_energy_per_site(3, 1e6)) < 1e-4
    assert math.isclose(_exact_energy_per_site(3, 0.05), -2.0, rel_tol=1e-9)
