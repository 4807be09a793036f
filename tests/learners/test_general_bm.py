"""General Boltzmann machines (hidden units coupled to each other): PCD gradients and training
against exact enumeration; Gibbs `sample` runs of Boltzmann models against exact moments."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

import physml_lang
from physml_lang.catalogue.boltzmann import AdamOptions, ConstantOptions, PCDOptions
from physml_lang.compiler.models.boltzmann import BoltzmannModel
from physml_lang.runtime.learners.train import Trainer
from physml_lang.runtime.random import RandomStreams


def stdlib_bm(name="BoltzmannMachine", **args) -> BoltzmannModel:
    p = physml_lang.load(f"import {name}\nrun r {{ train {name} via pcd(1), data = x }}")
    return p.compile_ir(p.instantiate(name, args), kind="boltzmann", dtype=torch.float64)


def states(values, n) -> torch.Tensor:
    return torch.tensor(list(itertools.product(values, repeat=n)), dtype=torch.float64)


def exact_nll(m: BoltzmannModel, data: torch.Tensor) -> torch.Tensor:
    """-mean log p(v) with p(v) = sum_h exp(-E) / Z, all by enumeration."""
    field = next(iter(m.domains))
    n = sum(m.sets[m.field_sets[f]] for f in m.domains)
    S = states(m.domains[field].values(), n)
    log_z = torch.logsumexp(-m.energy(_split(m, S)), 0)
    return _free(m, data).mean() + log_z


def _split(m, S):
    out, at = {}, 0
    for f in m.domains:
        k = m.sets[m.field_sets[f]]
        out[f] = S[:, at : at + k]
        at += k
    return out


def _free(m, v):
    """F(v) with autograd (enumerating the latent units of a single-field BM)."""
    field = next(iter(m.domains))
    nh = m.sets[m.field_sets[field]] - v.shape[1]
    H = states(m.domains[field].values(), nh)
    s = torch.cat([v.repeat_interleave(len(H), 0), H.repeat(len(v), 1)], 1)
    return -torch.logsumexp(-m.energy({field: s}).reshape(len(v), len(H)), 1)


def cosine(a, b) -> float:
    a = torch.cat([x.reshape(-1) for x in a])
    b = torch.cat([x.reshape(-1) for x in b])
    return float(a @ b / (a.norm() * b.norm()))


def teacher_data(g, n=3000):
    data = (torch.rand(n, 4, generator=g) < torch.tensor([0.2, 0.7, 0.5, 0.3])).double()
    data[:, 3] = torch.where(torch.rand(n, generator=g) < 0.8, data[:, 0], data[:, 3])
    return data


@pytest.mark.parametrize("positive", ["gibbs", "meanfield"])
def test_pcd_gradient_matches_exact(positive):
    m = stdlib_bm(Nv=4, Nh=3, sigma=0.8)
    with torch.no_grad():
        m.params["b"].copy_(0.5 * torch.randn(7, generator=torch.Generator().manual_seed(5)))
    g = torch.Generator().manual_seed(3)
    data = teacher_data(g)
    exact = torch.autograd.grad(exact_nll(m, data), list(m.params.values()))
    t = Trainer(m, data, "pcd", PCDOptions(k=20, chains=3000, positive_sweeps=20,
                                           positive=positive),
                "adam", AdamOptions(), "constant", ConstantOptions(), 1, 3000, RandomStreams(3),
                visible=4)  # fmt: skip
    assert t.latent
    pos = t.positives(data, torch.arange(len(data)))
    neg = t.negatives(pos)
    loss = m.energy(pos).mean() - m.energy(neg).mean()
    est = torch.autograd.grad(loss, list(m.params.values()))
    # measured: 0.9995 (gibbs), 0.998 (mean field, biased)
    assert cosine(est, exact) > (0.99 if positive == "gibbs" else 0.95)
    # the marginal free energy by enumeration
    torch.testing.assert_close(t.free_energy(data[:20]), _free(m, data[:20]).detach())


def test_training_approaches_exact_optimum():
    """Data from a teacher BM (4 visible + 2 hidden, exact samples); the student's exact KL to
    the data distribution falls from its initial value to near the teacher's own."""
    teacher = stdlib_bm(Nv=4, Nh=2, sigma=1.5, seed=7)
    S = states([0.0, 1.0], 6)
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        p = torch.softmax(-teacher.energy({"s": S}), 0)
        data = S[torch.multinomial(p, 4000, replacement=True, generator=g), :4]

    def kl(model):
        _, counts = np.unique(data.numpy(), axis=0, return_counts=True)
        pd = counts / counts.sum()
        with torch.no_grad():
            return float((pd * np.log(pd)).sum() + exact_nll(model, data))

    student = stdlib_bm(Nv=4, Nh=2, sigma=0.1, seed=3)
    t = Trainer(student, data, "pcd", PCDOptions(k=2, chains=400, positive_sweeps=2), "adam",
                AdamOptions(lr=0.03), "constant", ConstantOptions(), 25, 200, RandomStreams(11),
                visible=4)  # fmt: skip
    before, reference = kl(student), kl(teacher)
    for _ in range(25):
        t.run_epoch()
    after = kl(student)
    assert after < 0.25 * before and after < reference + 0.02, (before, after, reference)


def test_no_hidden_units_is_inverse_ising():
    """SpinBoltzmannMachine(Nh = 0) trains exactly like BoltzmannIsing (the same energy)."""
    bm = stdlib_bm("SpinBoltzmannMachine", Nv=6, Nh=0, sigma=0.0)
    ising = stdlib_bm("BoltzmannIsing", N=6)
    data = 2 * (torch.rand(500, 6, generator=torch.Generator().manual_seed(1)) < 0.3).double() - 1
    grads = []
    for m in (bm, ising):
        t = Trainer(m, data, "pcd", PCDOptions(k=2, chains=50), "adam", AdamOptions(),
                    "constant", ConstantOptions(), 1, 100, RandomStreams(2),
                    visible=6)  # fmt: skip
        assert not t.latent
        neg = t.negatives(data)[t.field]
        loss = t.free_energy(data).mean() - t.free_energy(neg).mean()
        grads.append(torch.autograd.grad(loss, list(m.params.values())))
    torch.testing.assert_close(grads[0][0], grads[1][0])  # couplings W = J
    torch.testing.assert_close(grads[0][1], grads[1][1])  # fields b = h


LAYERED = """
model LBM(Nv: int = 3, Nh: int = 3) {
    graph boltzmann(Nv, Nh)
    field v: binary on visible
    field h: spin on hidden
    learnable param W on edges = normal(0, 0.7, seed = 1)
    learnable param L on visible_pairs = normal(0, 0.7, seed = 2)
    learnable param J on hidden_pairs = normal(0, 0.7, seed = 3)
    learnable param a on visible = normal(0, 0.5, seed = 4)
    learnable param b on hidden = normal(0, 0.5, seed = 5)
    energy E = -sum(a[i] * v[i] for i in visible) - sum(b[j] * h[j] for j in hidden)
               - sum(W[i, j] * v[i] * h[j] for (i, j) in edges)
               - sum(L[i, j] * v[i] * v[j] for (i, j) in visible_pairs)
               - sum(J[i, j] * h[i] * h[j] for (i, j) in hidden_pairs)
}
"""


def test_layered_general_bm():
    """Separate visible-visible (L), visible-hidden (W) and hidden-hidden (J) couplings on
    graph boltzmann(Nv, Nh)."""
    p = physml_lang.load(LAYERED)
    m = p.compile_ir(p.instantiate("LBM"), kind="boltzmann", dtype=torch.float64)
    assert m.blocks == []  # both layers interact with themselves
    V, H = states([0.0, 1.0], 3), states([-1.0, 1.0], 3)
    v, h = V.repeat_interleave(8, 0), H.repeat(8, 1)
    g = torch.Generator().manual_seed(4)
    data = V[torch.multinomial(torch.tensor([3.0, 1, 1, 2, 1, 1, 2, 5]), 2000, True, generator=g)]

    def nll():
        e = m.energy({"v": v, "h": h})
        F = -torch.logsumexp(-e.reshape(8, 8), 1)
        idx = (data * torch.tensor([4.0, 2, 1])).sum(1).long()
        return F[idx].mean() + torch.logsumexp(-e, 0)

    exact = torch.autograd.grad(nll(), list(m.params.values()))
    # each example four times (the same exact gradient): 8000 positive and 8000 negative chains
    # keep the estimate's noise well inside the bound (cosine 0.991-0.999 over 16 seeds; with
    # 2000 of each, 0.971-0.998)
    copies = data.repeat(4, 1)
    t = Trainer(m, copies, "pcd", PCDOptions(k=20, chains=8000, positive_sweeps=20), "adam",
                AdamOptions(), "constant", ConstantOptions(), 1, 8000, RandomStreams(4))  # fmt: skip
    assert t.latent and t.visible == 3
    pos = t.positives(copies, torch.arange(len(copies)))
    loss = m.energy(pos).mean() - m.energy(t.negatives(pos)).mean()
    assert cosine(torch.autograd.grad(loss, list(m.params.values())), exact) > 0.98


# ---------------------------------------------------------------- sample runs


def _exact_means(m: BoltzmannModel) -> dict[str, torch.Tensor]:
    sizes = [(f, m.sets[m.field_sets[f]]) for f in m.domains]
    values = []
    for f, n in sizes:
        values += [m.domains[f].values()] * n
    S = torch.tensor(list(itertools.product(*values)), dtype=torch.float64)
    st = _split(m, S)
    with torch.no_grad():
        p = torch.softmax(-m.energy(st), 0)
    return {f: p @ st[f] for f in m.domains}


SAMPLE = """
MODEL
run r {
    model NAME(ARGS)
    sampler gibbs(chains = 200, sweeps = 300, burn_in = 50)
    measure energy, MEASURES
}
"""

COMPLETE = """model G(N: int = 6) {
    graph complete(N)
    field s: binary on sites
    learnable param W on pairs = normal(0, 0.8, seed = 2)
    learnable param b on sites = normal(0, 0.5, seed = 3)
    energy E = -sum(W[i, j] * (2 * s[i] - 1) * (2 * s[j] - 1) for (i, j) in pairs)
               - sum(b[i] * s[i] for i in sites)
}"""


@pytest.mark.parametrize("model,name,args,measures", [
    ("import SpinRBM", "SpinRBM", "Nv = 5, Nh = 3, sigma = 0.7, seed = 4", "mean_v, mean_h"),
    (COMPLETE, "G", "N = 6", "mean_s"),
])  # fmt: skip
def test_sample_run_moments_match_exact(tmp_path, model, name, args, measures):
    text = SAMPLE.replace("MODEL", model).replace("NAME", name).replace("ARGS", args)
    program = physml_lang.load(text.replace("MEASURES", measures))
    program.check()
    res = program.run(out=tmp_path, seed=3)
    params = {k: _num(v) for k, v in (a.split(" = ") for a in args.split(", "))}
    ir = program.checker_for(program.runs["r"]).instantiate(params)
    m = program.compile_ir(ir, kind="boltzmann", dtype=torch.float64)
    exact = _exact_means(m)
    moments = np.load(tmp_path / "moments.npz")
    for f, mu in exact.items():
        est, err = moments[f"{f}_mean_0"], moments[f"{f}_stderr_0"]
        assert np.all(np.abs(est - mu.numpy()) < 4 * err + 1e-3), (f, est, mu, err)
        row = res.rows[0][f"mean_{f}"]
        assert abs(row["mean"] - float(mu.mean())) < 4 * row["stderr"] + 1e-3


def _num(x: str):
    return float(x) if "." in x else int(x)


TRAIN = """
import BoltzmannMachine
data X: binary = random(p = 0.3, seed = 1)
learner bm = BoltzmannMachine(Nv = 4, Nh = 2)
run fit {
    train bm via pcd(k = 1, chains = 50), data = X, VISIBLE epochs = 2, batch = 50
    measure exact_kl
}
"""


def _errors(text: str):
    with pytest.raises(Exception) as exc:
        physml_lang.load(text, allow_outside=True).check()  # params files in tmp_path
    return exc.value.diagnostics[0]


def test_train_checks_are_located(tmp_path):
    d = _errors(TRAIN.replace("random(p = 0.3, seed = 1)", "random(p = 0.3, seed = 1)")
                .replace("data X: binary", "data X: binary[100, 5]").replace("VISIBLE", "visible = Nv,"))  # fmt: skip
    assert d.code == "P601" and "4 visible sites" in d.message and d.span is not None
    d = _errors(TRAIN.replace("data X: binary", "data X: binary[100, 4]")
                .replace("VISIBLE", "visible = Nx,"))  # fmt: skip
    assert d.code == "P205" and d.span is not None and "Nx" in d.message
    d = _errors(TRAIN.replace("data X: binary", "data X: binary[100, 4]")
                .replace("VISIBLE", "visible = 9,"))  # fmt: skip
    assert d.code == "P406" and d.span is not None


def test_trained_general_bm_and_params_statement(tmp_path):
    text = (TRAIN.replace("data X: binary", "data X: binary[200, 4]")
            .replace("VISIBLE", "visible = Nv,"))  # fmt: skip
    res = physml_lang.load(text).run(out=tmp_path / "fit", seed=0)
    assert res.rows[0]["exact_kl"]["mean"] > 0
    params_file = tmp_path / "fit" / "params.safetensors"
    sample = f"""
    import BoltzmannMachine
    run s {{
        model BoltzmannMachine(Nv = 4, Nh = 2)
        params "{params_file}"
        sampler gibbs(chains = 20, sweeps = 20, burn_in = 5)
        measure mean_s
    }}"""
    p = physml_lang.load(sample, allow_outside=True)  # params_file is outside the cwd
    p.check()
    assert p.run(seed=1).rows[0]["mean_s"]["stderr"] > 0
    d = _errors(sample.replace("Nh = 2", "Nh = 3"))
    assert d.code == "P608" and "shape" in d.message and d.span is not None
    d = _errors(sample.replace("mean_s", "mean_q"))
    assert d.code == "P208"


def test_layered_stdlib_model_and_graph_errors():
    """The stdlib LayeredBoltzmannMachine declares W, L, J on graph boltzmann(Nv, Nh); a graph
    with the wrong number of sizes is a located error."""
    import pytest

    from physml_lang.diagnostics import PhysmlError

    prog = physml_lang.load("import LayeredBoltzmannMachine\n")
    m = prog.model("LayeredBoltzmannMachine", Nv=5, Nh=3)
    assert set(m.params) == {"W", "L", "J", "a", "b"}
    assert m.blocks == []  # both layers interact with themselves: no block Gibbs
    bad = LAYERED.replace("graph boltzmann(Nv, Nh)", "graph boltzmann(Nv)")
    with pytest.raises(PhysmlError) as err:
        physml_lang.load(bad).models["LBM"].instantiate({})
    assert err.value.diagnostics[0].code == "P317"
    assert "boltzmann(Nv, Nh) takes two sizes" in err.value.diagnostics[0].message
