"""Device discipline: every tensor a run creates lives on the run's device.

The meta pass: torch's default device is set to ``meta`` and each pinned example case runs with
``device="cpu"``. A tensor created without an explicit ``device=`` (a factory call, a module's
parameters) lands on ``meta`` and the run fails as soon as it is mixed with the CPU tensors or
read (``.item()``, a copy to numpy), so a slip that would put a tensor on the CPU of a CUDA run
is caught on a machine without a GPU. Host-side work creates its tensors with ``device="cpu"``.
"""

from __future__ import annotations

import pytest
import torch

import physml_lang

from .test_example_pins import CASES, ROOT

META_CASES = [c for c in CASES if c[0] != "rbm_digits"]  # needs sklearn's digits; same paths


@pytest.mark.parametrize(
    "example, run, sets", META_CASES, ids=[f"{e}-{r or 'default'}" for e, r, _ in META_CASES]
)
def test_run_creates_no_tensor_on_the_default_device(example: str, run: str | None, sets: dict,
                                                     tmp_path):  # fmt: skip
    program = physml_lang.load(ROOT / "examples" / f"{example}.phys")
    torch.set_default_device("meta")
    try:
        program.run(run, sets=sets, seed=0, out=tmp_path / "out", device="cpu")
    finally:
        torch.set_default_device(None)


def test_physml_device_overrides_auto_only(monkeypatch):
    from physml_lang.api import resolve_device
    from physml_lang.diagnostics import PhysmlError

    monkeypatch.setenv("PHYSML_DEVICE", "cpu")
    assert resolve_device("auto") == torch.device("cpu")
    monkeypatch.setenv("PHYSML_DEVICE", "auto")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setenv("PHYSML_DEVICE", "tpu")
    assert resolve_device("cpu") == torch.device("cpu")  # an explicit device wins
    with pytest.raises(PhysmlError, match="PHYSML_DEVICE"):
        resolve_device("auto")
    if not torch.cuda.is_available():
        monkeypatch.setenv("PHYSML_DEVICE", "cuda")
        with pytest.raises(PhysmlError, match="no CUDA device"):
            resolve_device("auto")
