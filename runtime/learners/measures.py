"""What the learner tasks measure: observables of Gibbs sample runs, per-unit moments, the
measures of a trained model (likelihoods by AIS or enumeration, KL divergence to the data,
coupling errors against a known truth, observables of generated samples measured with a
physical model), and means over independent samples (chains, patterns)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from physml_lang.catalogue.boltzmann import AISOptions, GenerateOptions
from physml_lang.compiler.instance import RealData
from physml_lang.compiler.models.boltzmann import BoltzmannModel
from physml_lang.runtime.plans.learners import physical_measures, statements

from ..observables import FLUCTUATIONS, base_series, estimate_fluctuation, estimate_mean
from ..random import RandomStreams
from ..sample_task import _compile_measures
from ..statistics import binning_analysis
from ..tasks import RunState
from .ais import ais_log_z, exact_log_z
from .gibbs import generate
from .models import aux_model
from .train import Trainer

# families of a train point's random streams by purpose (the point's own streams train), so
# that evaluating a model draws the same numbers however long it trained
AIS_STREAMS, GENERATION_STREAMS = 1, 2


# ---------------------------------------------------------------- catalogue observables


@dataclass(frozen=True)
class LearnerMeasure:
    """A measure of a trained model, evaluated by the train task (:func:`evaluate`); which
    ones need F(v) by enumeration is a static fact of the catalogue."""


@dataclass(frozen=True)
class GibbsObservable:
    """An observable of Boltzmann sample runs: ``series(series, field, name)`` -> (T, chains)
    from the Gibbs series of every field (``__energy__``: the energy) and the data field."""

    series: Callable[[dict[str, torch.Tensor], str, str], torch.Tensor]


def _energy_series(series: dict[str, torch.Tensor], field: str, name: str) -> torch.Tensor:
    return series["__energy__"]


def _magnetization_series(series: dict[str, torch.Tensor], field: str, name: str) -> torch.Tensor:
    return series[field].sum(-1)


def _mean_series(series: dict[str, torch.Tensor], field: str, name: str) -> torch.Tensor:
    return series[name[5:]].mean(-1)


ENERGY = GibbsObservable(_energy_series)
MAGNETIZATION = GibbsObservable(_magnetization_series)
MEAN = GibbsObservable(_mean_series)
LEARNER_MEASURE = LearnerMeasure()


# ---------------------------------------------------------------- estimates


def estimate(x: np.ndarray) -> dict:
    """Mean and standard error over independent samples (chains or patterns)."""
    return binning_analysis(np.asarray(x, dtype=np.float64)[None, :]).as_dict()


def unit_moments(series: dict[str, torch.Tensor], k: int) -> dict[str, np.ndarray]:
    """Per-unit means and binning errors of every field's Gibbs series (T, chains, n), named
    ``{field}_mean_{k}`` and ``{field}_stderr_{k}`` for point k (moments.npz)."""
    out = {}
    for f, s in series.items():
        if f == "__energy__":
            continue
        x = s.double().cpu().numpy()
        est = [binning_analysis(x[:, :, i]) for i in range(x.shape[2])]  # analysis only
        out[f"{f}_mean_{k}"] = np.array([e.mean for e in est])
        out[f"{f}_stderr_{k}"] = np.array([e.stderr for e in est])
    return out


# ---------------------------------------------------------------- physical measures


@dataclass
class PhysicalMeasures:
    """Observables of generated samples, measured with a physical model (``physical =
    Ising(L = 6)``, compiled as a lattice model): the measures, their expressions' compiler
    and kernels."""

    model: Any
    measures: list
    compiler: Any
    kernels: dict


def compile_physical(run: RunState, program) -> PhysicalMeasures | None:
    """The physical model and its measured expressions, compiled when a train run starts
    (their names and expressions are checked by compiling them: torch)."""
    measures = physical_measures(run)
    if not measures:
        return None
    cm = aux_model(program, statements(run).train["models"]["physical"], kind="lattice")
    compiler, kernels = _compile_measures(cm, measures)
    return PhysicalMeasures(cm, measures, compiler, kernels)


def measure_physical(physical: PhysicalMeasures, series: torch.Tensor, data: RealData) -> dict:
    """Observables of a physical model (energy, magnetization, expressions) on generated
    visible configurations ``series`` (sweeps, chains, n_visible) at the data's temperature,
    with binning errors over (sweeps, chains)."""
    cm, measures, compiler, kernels = (physical.model, physical.measures, physical.compiler,
                                       physical.kernels)  # fmt: skip
    Tn, C, n = series.shape
    field = next(iter(cm.fields))
    x = series.reshape(Tn * C, *cm.lattice.shape).to(cm.dtype).cpu()
    state = {field: x}
    e = cm.energy(state)
    m = cm.magnetization(state)
    T = data.meta.get("T", 1.0)
    beta = torch.full_like(e, 1.0 / T)
    env = compiler.env(state, e, m, beta)
    out = {}
    base = base_series(e.reshape(Tn, C).double().numpy(), m.reshape(Tn, C).double().numpy())
    for meas in measures:
        if meas.name in kernels:
            v = torch.as_tensor(kernels[meas.name](env), dtype=torch.float64,
                                device=e.device).expand(Tn * C)
            out[meas.name] = estimate_mean(v.reshape(Tn, C).numpy()).as_dict()
        elif meas.name in FLUCTUATIONS:
            n_sites = cm.lattice.n_sites
            out[meas.name] = estimate_fluctuation(meas.name, base, 1.0 / T, n_sites).as_dict()
        elif meas.name == "energy":
            out[meas.name] = estimate_mean(base["E"]).as_dict()
        elif meas.name == "magnetization":
            out[meas.name] = estimate_mean(base["M"]).as_dict()
    return out


# ---------------------------------------------------------------- a trained model


def coupling_error(program, run: RunState, cm: BoltzmannModel, data: RealData) -> dict:
    """The rms difference between the learned couplings and fields and the truth's J / T
    (pair arrays: each pair once), and relative to the truth's rms."""
    truth = aux_model(program, statements(run).train["models"]["truth"]).model
    T = data.meta.get("T", 1.0)
    errs, scale = [], []
    for name, arr in truth.arrays.items():
        if name in cm.params:
            learned = cm.params[name].detach().double().cpu().numpy()
            true = np.asarray(arr.values) / T
            if arr.on == "pairs":
                iu = np.triu_indices(true.shape[0], 1)
                learned, true = learned[iu], true[iu]
            errs.append((learned - true).ravel())
            scale.append(true.ravel())
    e, s = np.concatenate(errs), np.concatenate(scale)
    return {"mean": float(np.sqrt((e**2).mean())), "stderr": None,
            "relative": float(np.sqrt((e**2).mean() / (s**2).mean()))}  # fmt: skip


def evaluate(run: RunState, program, cm: BoltzmannModel, trainer: Trainer, train: torch.Tensor,
             test: torch.Tensor, last: dict, data: RealData, streams: RandomStreams,
             physical: PhysicalMeasures | None) -> tuple[dict, torch.Tensor | None]:  # fmt: skip
    """The measures of a trained model (a row: likelihoods on the held-out data, else on the
    training data; couplings; observables of generated samples) and the generated visible
    configurations (chains, n_visible), None where none were generated. ``last``: the last
    epoch's history entry; ``streams``: the point's, forked for AIS and generation."""
    row: dict[str, Any] = {}
    names = [m.name for m in run.measures] or ["loss"]
    row["loss"] = {"mean": last.get("loss"), "stderr": None}
    if "reconstruction" in names:
        row["reconstruction"] = {"mean": last.get("reconstruction"), "stderr": None}
    evald = test if len(test) else train
    ais = statements(run).ais or AISOptions()
    if "log_likelihood" in names or "log_z" in names:
        log_z, err = ais_log_z(cm, ais.betas, ais.chains, streams.fork(AIS_STREAMS),
                               trainer.world)  # fmt: skip
        row["log_z"] = {"mean": log_z, "stderr": err}
        if "log_likelihood" in names:
            with torch.no_grad():
                f = trainer.free_energy(evald).double().cpu().numpy()
            se = math.sqrt(err**2 + f.var(ddof=1) / len(f)) if len(f) > 1 else err
            row["log_likelihood"] = {"mean": float(-f.mean() - log_z), "stderr": se}
    if "exact_log_likelihood" in names or "exact_kl" in names:
        lz = exact_log_z(cm)
        with torch.no_grad():
            f = trainer.free_energy(evald).double().cpu().numpy()
        ll = float(-f.mean() - lz)
        se = float(f.std(ddof=1) / math.sqrt(len(f))) if len(f) > 1 else None
        if "exact_log_likelihood" in names:
            row["exact_log_likelihood"] = {"mean": ll, "stderr": se}
        if "exact_kl" in names:
            # KL(p_data || p_model) = sum_v p_data log p_data - mean_data log p_model(v)
            _, counts = np.unique(evald.cpu().numpy(), axis=0, return_counts=True)
            pd = counts / counts.sum()
            row["exact_kl"] = {"mean": float((pd * np.log(pd)).sum() - ll), "stderr": se,
                               "data_entropy": float(-(pd * np.log(pd)).sum())}  # fmt: skip
    if "coupling_error" in names:
        row["coupling_error"] = coupling_error(program, run, cm, data)
    gen = statements(run).generate
    if gen is None and physical is None:
        return row, None
    samples, series = generate(cm, trainer.field, gen or GenerateOptions(),
                               streams.fork(GENERATION_STREAMS), trainer.world)  # fmt: skip
    samples, series = samples[:, : trainer.visible], series[..., : trainer.visible]
    if physical is not None:
        row.update(measure_physical(physical, series, data))
    return row, samples
