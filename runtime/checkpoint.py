"""One checkpoint format for every task: safetensors tensors plus JSON metadata, no pickle.

A checkpoint holds named tensors (parameters, optimiser moments, chain states, generator
states) and a JSON header: the format name and version, the task's progress (``state``: an
iteration, a scan point, histories) and the ``settings`` it was made with (the model IR as
text, the run's options, the seed) with their SHA-256. Loading checks, in order: the file reads
as safetensors (not truncated or corrupt), it is a physml checkpoint of this version, the
settings are the same (a mismatch names the settings that differ), and every tensor is finite
and has the shape and dtype the task expects. Each failure is a located P602 with a hint.
Writes are atomic (a temporary file renamed over the old one), so a kill leaves the previous
checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from physml_lang.diagnostics import Diagnostic, PhysmlError, Span

FORMAT = "physml-checkpoint"
VERSION = 2  # 2: counter-based random streams (a draw counter, no generator state)


@dataclass
class Checkpoint:
    """What a task saves and restores: ``tensors`` by name, ``state`` (JSON-able progress)."""

    tensors: dict[str, torch.Tensor]
    state: dict[str, Any]


def settings_hash(settings: dict[str, Any]) -> str:
    """SHA-256 of the settings in canonical JSON (sorted keys)."""
    text = json.dumps(settings, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def save_checkpoint(path: Path, checkpoint: Checkpoint, settings: dict[str, Any]) -> None:
    """Write ``checkpoint`` atomically; ``settings`` identify what it may resume."""
    meta = {
        "format": FORMAT,
        "version": str(VERSION),
        "state": json.dumps(checkpoint.state, default=float),
        "settings": json.dumps(settings, sort_keys=True, default=str),
        "settings_sha256": settings_hash(settings),
    }
    tensors = {k: v.detach().contiguous().cpu() for k, v in checkpoint.tensors.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata=meta)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _bad(path: Path, what: str, span: Span | None, hint: str) -> PhysmlError:
    return PhysmlError(Diagnostic("P602", f"checkpoint {path}: {what}", span, hint))


def _differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """``name: saved -> current`` for every top-level setting that differs."""
    out = []
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key, "(absent)"), current.get(key, "(absent)")
        if json.dumps(a, sort_keys=True, default=str) != json.dumps(b, sort_keys=True, default=str):
            short = [json.dumps(x, default=str) for x in (a, b)]
            short = [s if len(s) <= 60 else s[:57] + "..." for s in short]
            out.append(f"{key}: {short[0]} -> {short[1]}")
    return out


def load_checkpoint(path: Path, settings: dict[str, Any],
                    expected: dict[str, tuple[tuple[int, ...], torch.dtype]] | None = None,
                    span: Span | None = None) -> Checkpoint:  # fmt: skip
    """Read and validate a checkpoint written by :func:`save_checkpoint` for ``settings``.

    ``expected``: tensor name -> (shape, dtype) the task will load; every such tensor must be
    present with that shape and dtype. Floating tensors must be finite."""
    fresh = "delete it, or run without --resume to start afresh"
    try:
        tensors = {k: v.clone() for k, v in load_file(str(path)).items()}
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise _bad(path, f"cannot be read ({str(e).splitlines()[0][:120]}): truncated or "
                   "corrupt", span, fresh) from None  # fmt: skip
    if meta.get("format") != FORMAT:
        raise _bad(path, "is not a physml checkpoint", span, fresh)
    if meta.get("version") != str(VERSION):
        raise _bad(path, f"has format version {meta.get('version')}, this physml reads "
                   f"version {VERSION}", span, fresh)  # fmt: skip
    try:
        saved = json.loads(meta["settings"])
        state = json.loads(meta["state"])
    except (KeyError, json.JSONDecodeError):
        raise _bad(path, "has a corrupt header", span, fresh) from None
    if meta.get("settings_sha256") != settings_hash(saved):
        raise _bad(path, "has a corrupt header (its settings do not match their hash)", span,
                   fresh)  # fmt: skip
    if settings_hash(saved) != settings_hash(settings):
        diff = _differences(saved, settings)
        raise _bad(path, "was made with other settings: " + "; ".join(diff), span,
                   "resume with the settings it was made with, or use another --out")  # fmt: skip
    for name, t in tensors.items():
        if t.is_floating_point() or t.is_complex():
            if not bool(torch.isfinite(t).all()):
                raise _bad(path, f"tensor '{name}' holds NaN or infinite values", span, fresh)
    for name, (shape, dtype) in (expected or {}).items():
        t = tensors.get(name)
        if t is None:
            raise _bad(path, f"has no tensor '{name}'", span, fresh)
        if tuple(t.shape) != tuple(shape) or t.dtype != dtype:
            raise _bad(path, f"tensor '{name}' is {tuple(t.shape)} {t.dtype}, expected "
                       f"{tuple(shape)} {dtype}", span, fresh)  # fmt: skip
    return Checkpoint(tensors, state)


def training_tensors(module: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, torch.Tensor]:
    """A network's parameters (``param/NAME``) and its optimiser's per-parameter state
    (``adam/I/KEY``, the step count as a 1-element CPU tensor), copied for a checkpoint."""
    out = {f"param/{k}": v.detach().clone() for k, v in module.state_dict().items()}
    for i, p in enumerate(module.parameters()):
        for k, v in optimizer.state.get(p, {}).items():
            out[f"adam/{i}/{k}"] = torch.as_tensor(v, device="cpu").detach().clone().reshape(-1) \
                if k == "step" else v.detach().clone()  # fmt: skip
    return out


def restore_training(module: torch.nn.Module, optimizer: torch.optim.Optimizer,
                     tensors: dict[str, torch.Tensor]) -> None:  # fmt: skip
    """Load what :func:`training_tensors` saved back into ``module`` and ``optimizer``."""
    module.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("param/")})
    for i, p in enumerate(module.parameters()):
        st = {k.split("/")[2]: v for k, v in tensors.items() if k.startswith(f"adam/{i}/")}
        if st:
            if "step" in st:
                st["step"] = st["step"].reshape(()).to(torch.float32)
            optimizer.state[p] = {k: v.to(p.device) if k != "step" else v for k, v in st.items()}


__all__ = ["Checkpoint", "FORMAT", "VERSION", "load_checkpoint", "restore_training",
           "save_checkpoint", "settings_hash", "training_tensors"]  # fmt: skip
