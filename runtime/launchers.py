"""Which launcher started this process, read from the environment alone (no torch: the command
line asks before it loads anything): physml's own ``--nproc``, then torchrun, then SLURM."""

from __future__ import annotations

import os

RANK_ENV, SIZE_ENV, STORE_ENV = "PHYSML_RANK", "PHYSML_WORLD_SIZE", "PHYSML_STORE"


def environment_world() -> tuple[int, int, int, str | None] | None:
    """(rank, size, local rank, init method) from the environment, or None for one process:
    physml's own launcher first, then torchrun, then SLURM."""
    env = os.environ
    if SIZE_ENV in env:
        rank, size = int(env[RANK_ENV]), int(env[SIZE_ENV])
        return rank, size, rank, f"file://{env[STORE_ENV]}"
    if "WORLD_SIZE" in env and "RANK" in env:
        return int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0)), "env://"
    if int(env.get("SLURM_NTASKS", "1")) > 1 and "SLURM_PROCID" in env:
        return (int(env["SLURM_PROCID"]), int(env["SLURM_NTASKS"]),
                int(env.get("SLURM_LOCALID", 0)), None)  # fmt: skip
    return None


__all__ = ["RANK_ENV", "SIZE_ENV", "STORE_ENV", "environment_world"]
