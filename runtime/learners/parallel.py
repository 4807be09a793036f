"""Data-parallel training over the processes of a run (``runtime/distributed.py``'s World).

Every rank holds the same parameters and optimiser state. A training step shards its batch
(samples, persistent chains, minibatch rows) with ``world.shard(n)``; each rank draws its block
from the same random streams with stream 0 at the block's global index (``drawing``), so a
sample or chain draws the same numbers on whichever rank holds it. Each rank's loss is its
block's share of the whole batch's loss (sums divided by the global batch size), so the
all-reduced SUM of the gradients (``reduce_gradients``) is the gradient of one process up to
the order of the floating-point sum; every rank then takes the same optimiser step.
Per-sample values are gathered in global order (``World.all_gather``) before estimates are
formed from them, so reported numbers are those of one process. With one process nothing of
this runs: the one-process code paths are unchanged.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch
import torch.distributed as dist

from ..distributed import SINGLE, World, _collective
from ..random import RandomStreams

Tensor = torch.Tensor


@contextmanager
def drawing(streams: RandomStreams, first: int) -> Iterator[RandomStreams]:
    """``streams`` with stream 0 at global index ``first`` (a rank's block of a batch) for the
    draws inside the block; the draw counter advances as for the whole batch."""
    old = streams.first
    streams.first = int(first)
    try:
        yield streams
    finally:
        streams.first = old


def reduce_gradients(params: Iterable[torch.nn.Parameter], world: World,
                     extra: Iterable[float] = (), scale: float = 1.0) -> list[float]:  # fmt: skip
    """All-reduce (SUM) the gradients of ``params`` over the ranks, in one collective with the
    numbers ``extra`` (each rank's share of the loss and of other batch sums), then multiply
    the summed gradients by ``scale``; the summed extras. A parameter without a gradient
    counts as a zero one. (A loss of unnormalised sums with ``scale`` = 1 / batch keeps sums
    of integers, e.g. spin counts, exact: a gradient that cancels exactly on one process
    cancels exactly here too, which Adam's first steps, ~ g / |g|, need.)"""
    params = [p for p in params if p.requires_grad]
    extra = [float(x) for x in extra]
    if world.size == 1:
        return extra
    dev = params[0].device if params else world.device
    flat = [(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).to(torch.float64)
            for p in params]  # fmt: skip
    flat.append(torch.tensor(extra, dtype=torch.float64, device=dev))
    buf = torch.cat(flat)
    _collective(lambda: dist.all_reduce(buf, op=dist.ReduceOp.SUM), world, "summing gradients")
    at = 0
    for p in params:
        n = p.numel()
        g = buf[at : at + n].reshape(p.shape)
        g = (g * scale if scale != 1.0 else g).to(p.dtype)
        if p.grad is None:
            p.grad = g
        else:
            p.grad.copy_(g)
        at += n
    return buf[at:].tolist()


def gather(world: World, n: int, *local: Tensor) -> list[Tensor]:
    """Each tensor's blocks (rank r: ``world.shard(n, r)`` rows) joined in global order."""
    return [world.all_gather(t, n) for t in local]


def parameter_digest(params: Iterable[Tensor]) -> str:
    """A hash of the parameters' bits (equal on two ranks only when the parameters are)."""
    h = hashlib.sha256()
    for p in params:
        h.update(p.detach().to("cpu").contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def record_digests(summary: dict, params: Iterable[Tensor], world: World) -> None:
    """Append every rank's parameter digest (gathered: a collective) to ``summary``'s
    ``data_parallel.digests``, one list per trained point; nothing with one process."""
    if world.size == 1:
        return
    digests = world.gather_objects(parameter_digest(params))
    entry = summary.setdefault("data_parallel", {"processes": world.size, "digests": []})
    entry["digests"].append(digests)


__all__ = ["SINGLE", "drawing", "gather", "parameter_digest", "record_digests",
           "reduce_gradients"]
