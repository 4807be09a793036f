"""Divergent proposals of Metropolis-corrected integrators (HMC, MALA), recorded on the device.

A trajectory whose energy change becomes non-finite is rejected, which keeps the chain exact:
an occasional divergence (a step size near the stability limit) costs acceptance, not
correctness. A chain whose proposals mostly diverge samples nothing, though: the action is
unbounded below, or the step far too large. That is what the owner reports as an error.
"""

from __future__ import annotations

import torch
from torch import Tensor

from physml_lang.diagnostics import Diagnostic, PhysmlError, Span

STUCK_FRACTION = 0.5  # a chain with more divergent than sound proposals samples nothing


class Divergences:
    """Per chain: the first divergent update (-1: none) and the number of them, (C,) int64
    tensors updated on the device without a host sync."""

    def __init__(self, chains: int, device: torch.device) -> None:
        self.first = torch.full((chains,), -1, dtype=torch.int64, device=device)
        self.count = torch.zeros(chains, dtype=torch.int64, device=device)
        self.updates = 0

    def record(self, finite: Tensor) -> None:
        """One update of every chain; ``finite`` (C,) bool: its energy change was finite."""
        bad = ~finite
        self.first = torch.where((self.first < 0) & bad, self.updates, self.first)
        self.count += bad
        self.updates += 1

    def stuck(self) -> tuple[int, int, float] | None:
        """(first divergent update, chain, fraction divergent) of the worst chain when more
        than STUCK_FRACTION of its updates diverged, else None (one host sync)."""
        if self.updates == 0:
            return None
        chain = int(self.count.argmax())
        fraction = int(self.count[chain]) / self.updates
        if fraction <= STUCK_FRACTION:
            return None
        return int(self.first[chain]), chain, fraction


def stuck_chain_error(stuck: tuple[int, int, float], what: str, burn_in: int, where: str,
                      span: Span | None, hint: str) -> PhysmlError:  # fmt: skip
    """The located P700 for a chain stuck behind divergent proposals (:meth:`Divergences.stuck`):
    ``what`` diverged, in which fraction of the chain's updates, first where; ``where`` names the
    run and scan point."""
    update, chain, fraction = stuck
    phase = "burn-in " if update < burn_in else ""
    return PhysmlError(Diagnostic(
        "P700", f"{what} became non-finite (inf or NaN) in {fraction:.0%} of the updates of chain "
        f"{chain}, first at {phase}update {update + 1}, in {where}", span,
        f"{hint}; rows of points finished before were kept"))  # fmt: skip
