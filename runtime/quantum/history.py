"""What a vmc point leaves besides its row: the optimisation history (one CSV row per
iteration) and the trained wave function's parameters."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import torch
from safetensors.torch import save_file

from .. import outputs

HISTORY_COLUMNS = ("iteration", "energy", "energy_stderr", "variance", "tau_int", "r_hat",
                   "acceptance", "lr")  # fmt: skip


def write_history(path: Path, history: dict[str, list[float]]) -> None:
    """One row per iteration (numbered from 0) of a point's optimisation, written atomically;
    nothing before the first iteration."""
    if not history.get("energy"):
        return
    history = {"iteration": [float(i) for i in range(len(history["energy"]))], **history}
    buf = io.StringIO()
    w = csv.writer(buf)
    cols = [c for c in HISTORY_COLUMNS if c in history]
    w.writerow(cols)
    for i in range(len(history["energy"])):
        w.writerow([history[c][i] if i < len(history[c]) else "" for c in cols])
    outputs._atomic_write(path, buf.getvalue().encode())


def save_network(model: torch.nn.Module, path: Path) -> Path:
    """The trained wave function's parameters by name (its state dict), written atomically."""
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(tensors, str(tmp))
    tmp.replace(path)
    return path


__all__ = ["HISTORY_COLUMNS", "save_network", "write_history"]
